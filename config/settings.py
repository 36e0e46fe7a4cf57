"""Troupe's settings: defaults < config file < environment variables < explicit arguments.

Environment variables are ``TROUPE_<SECTION>_<FIELD>`` (``TROUPE_LLM_MODEL``, ``TROUPE_LLM_BASE_URL``)
or ``TROUPE_<FIELD>`` for top-level fields. The config file is YAML, found at ``$TROUPE_CONFIG`` or
``./troupe.yaml``; its sections mirror the models below.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from bots.verification.policy import VerificationPolicy

DEFAULT_CONFIG_FILE = "troupe.yaml"


class LLMSettings(BaseModel):
    """Which model to talk to and how to treat it."""

    #: ``auto`` uses OpenAI-compatible settings when a model is configured, else the demo model.
    provider: Literal["auto", "openai", "azure", "demo"] = "auto"
    model: str | None = None
    base_url: str | None = None
    api_key: SecretStr | None = None
    #: Azure OpenAI: endpoint (``https://NAME.openai.azure.com``), deployment and API version.
    azure_endpoint: str | None = None
    azure_deployment: str | None = None
    api_version: str = "2024-10-21"

    temperature: float | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    timeout_s: float = Field(default=60.0, gt=0)

    #: Retries after the first attempt, on 429 / 5xx / timeouts / connection errors.
    max_retries: int = Field(default=4, ge=0)
    retry_base_delay_s: float = Field(default=1.0, ge=0)
    retry_max_delay_s: float = Field(default=60.0, ge=0)

    #: Most requests in flight at once, across all worlds.
    concurrency: int = Field(default=8, ge=1)

    #: Persistent response cache; makes a replay of the same simulation exact and free.
    cache: bool = True
    cache_path: Path | None = None

    #: Cost estimate in USD per million tokens; unknown models fall back to the built-in table.
    price_prompt_per_mtok: float | None = Field(default=None, ge=0)
    price_completion_per_mtok: float | None = Field(default=None, ge=0)

    #: Default cap per world; reaching it stops the world with a clear error.
    budget_usd: float | None = Field(default=None, ge=0)
    budget_tokens: int | None = Field(default=None, ge=0)

    @property
    def resolved_provider(self) -> Literal["openai", "azure", "demo"]:
        if self.provider != "auto":
            return self.provider
        if self.azure_endpoint:
            return "azure"
        if self.model or self.base_url or self.api_key:
            return "openai"
        return "demo"

    @model_validator(mode="after")
    def _check_azure(self) -> LLMSettings:
        if self.provider == "azure" and not self.azure_endpoint:
            raise ValueError(
                "provider 'azure' needs an endpoint: set TROUPE_LLM_AZURE_ENDPOINT "
                "(https://NAME.openai.azure.com)"
            )
        return self


class BotSettings(BaseModel):
    """How the bot behaves in channels."""

    #: The SQLite database; default ``<data_dir>/troupe.db``.
    database: Path | None = None
    #: Users who may change state, by platform user id (``discord:1234``, ``slack:U0123``, or a bare id).
    moderator_user_ids: list[str] = Field(default_factory=list)
    #: Platform role / user-group ids whose members are moderators.
    moderator_roles: list[str] = Field(default_factory=list)
    #: People the platform lets manage the channel (Discord's manage_channels, the console user)
    #: are moderators too.
    managers_are_moderators: bool = True
    #: Default talk policy of a new world: who answers a human message.
    default_policy: Literal["everyone", "addressed", "round_robin", "moderator", "model"] = "everyone"
    #: Persona-to-persona exchanges after a human message before the world waits again.
    default_exchanges: int = Field(default=1, ge=0, le=20)
    #: Most steps one ``run N`` may ask for.
    max_run_steps: int = Field(default=20, ge=1)
    #: Most personas in one world.
    max_personas: int = Field(default=12, ge=1)
    #: Longest human message a world accepts; longer ones are cut with a notice.
    max_message_chars: int = Field(default=4000, ge=100)
    #: Folders whose persona and scenario files moderators on chat platforms may load (``persona add
    #: FILE``, ``start --scenario FILE``), besides the bundled ones. The console may load any file.
    file_dirs: list[Path] = Field(default_factory=list)
    #: Avatar for persona posts; ``{seed}`` is replaced by the persona's name (URL-encoded).
    avatar_url_template: str = "https://api.dicebear.com/9.x/personas/png?seed={seed}"


class DiscordSettings(BaseModel):
    """How to reach Discord. Moderators come from ``bot`` (user ids, roles, manage_channels)."""

    #: The bot token from the Developer Portal (``TROUPE_DISCORD_TOKEN``).
    token: SecretStr | None = None
    #: REST base; a test points it at a local stand-in.
    api_base: str = "https://discord.com/api/v10"
    #: Gateway URL the client connects (and falls back) to.
    gateway_url: str = "wss://gateway.discord.gg/"
    #: Guilds whose slash commands are synced at start-up (instant, unlike global commands).
    guild_ids: list[int] = Field(default_factory=list)
    #: Also sync the commands globally (Discord may take up to an hour to show them everywhere);
    #: without ``guild_ids`` they are always synced globally.
    sync_global: bool = False
    #: Seconds a slash command may wait for its answer before it is deferred (Discord allows 3).
    defer_after_s: float = Field(default=2.0, gt=0, lt=3)


class SlackSettings(BaseModel):
    """How to reach Slack. Moderators come from ``bot`` (user ids, user-group ids, workspace admins)."""

    #: Bot token (``xoxb-…``) from OAuth & Permissions (``TROUPE_SLACK_BOT_TOKEN``).
    bot_token: SecretStr | None = None
    #: App-level token (``xapp-…``) with ``connections:write``, for Socket Mode (``TROUPE_SLACK_APP_TOKEN``).
    app_token: SecretStr | None = None
    #: Signing secret from Basic Information, for HTTP mode (``TROUPE_SLACK_SIGNING_SECRET``).
    signing_secret: SecretStr | None = None
    #: Web API base; a test points it at a local stand-in.
    api_base: str = "https://slack.com/api/"
    #: HTTP mode: where the Events API and slash-command requests are received.
    http_host: str = "0.0.0.0"
    http_path: str = "/slack/events"
    #: The slash command, as registered in the app manifest.
    command: str = "/troupe"
    #: Least seconds between two posts in one channel (Slack allows about one a second).
    post_interval_s: float = Field(default=1.0, ge=0)
    #: Seconds between Socket Mode pings; a dropped socket is noticed within about this long.
    ping_interval_s: float = Field(default=10.0, gt=0)


class Settings(BaseSettings):
    """All of Troupe's settings."""

    model_config = SettingsConfigDict(
        env_prefix="TROUPE_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="ignore",
    )

    #: Where Troupe keeps its databases (state, cache).
    data_dir: Path = Path(".troupe")
    log_level: str = "INFO"
    llm: LLMSettings = Field(default_factory=LLMSettings)
    bot: BotSettings = Field(default_factory=BotSettings)
    discord: DiscordSettings = Field(default_factory=DiscordSettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    #: What persona posts are checked for and what happens on a finding (per-channel overrides merge in).
    verification: VerificationPolicy = Field(default_factory=VerificationPolicy)
    #: Verification overrides for single channels, by channel key (``discord:1234``, ``slack:C0123``),
    #: e.g. ``{"slack:C0123": {"allowed_link_domains": ["example.com"], "pii_action": "block"}}``.
    channel_verification: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @property
    def database_path(self) -> Path:
        return self.bot.database or self.data_dir / "troupe.db"

    @property
    def llm_cache_path(self) -> Path:
        """The response cache lives in the bot's database unless configured elsewhere."""
        return self.llm.cache_path or self.database_path

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_file = Path(os.environ.get("TROUPE_CONFIG", DEFAULT_CONFIG_FILE))
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, dotenv_settings]
        if config_file.is_file():
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        elif "TROUPE_CONFIG" in os.environ:
            raise FileNotFoundError(f"TROUPE_CONFIG points to {config_file}, which does not exist")
        return (*sources, file_secret_settings)


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
