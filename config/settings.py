"""Troupe's settings: defaults < config file < environment variables < explicit arguments.

Environment variables are ``TROUPE_<SECTION>_<FIELD>`` (``TROUPE_LLM_MODEL``, ``TROUPE_LLM_BASE_URL``)
or ``TROUPE_<FIELD>`` for top-level fields. The config file is YAML, found at ``$TROUPE_CONFIG`` or
``./troupe.yaml``; its sections mirror the models below.
"""

from __future__ import annotations

import json
import os
import re
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from limits import parse_many as parse_rates
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings import SettingsError as SourceError  # a variable that should be JSON is not

from config.shards import check_shards, parse_shard_ids
from config.turn_taking import PolicyName
from config.verification import VerificationPolicy

DEFAULT_CONFIG_FILE = "troupe.yaml"
ENV_PREFIX = "TROUPE_"
#: URL schemes that put the bot's state in PostgreSQL (``database_url``).
POSTGRES_SCHEMES = ("postgresql", "postgres")


class SettingsError(ValueError):
    """The settings cannot be used; the message names the config file or the environment variable at
    fault and what to change, in one line."""


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

    #: Largest prompt, in tokens, sent to the model (its context window, or less); None lets the
    #: server say. Persona turns drop their oldest verbatim moments to fit; the persona and the
    #: memory summary always stay.
    context_tokens: int | None = Field(default=None, ge=256)

    #: Most requests in flight at once, across all worlds. Persona turns and other answers someone
    #: waits on go first; memory folds hold at most a quarter of the slots (at least one) and, while
    #: turns wait, one starts for every three turns.
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


class CommandRateSettings(BaseModel):
    """How often one person may run commands, or have the personas answer, on a chat platform, so that
    nobody floods a channel with answers, the model with work or the host with files. Each is a rate
    such as ``20 per minute`` or ``3 per 10 minutes``; ``null`` lifts it. The console's user sits at the
    host and is not limited."""

    #: Commands of any kind one person may run.
    commands: str | None = "20 per minute"
    #: Commands that make a file (``export``, ``extract``) one person may run.
    files: str | None = "3 per 10 minutes"
    #: Commands of any kind one moderator may run (moderators run the worlds and need more).
    moderator_commands: str | None = "120 per minute"
    #: Commands that make a file one moderator may run.
    moderator_files: str | None = "20 per 10 minutes"
    #: Messages one person may write in a channel that the personas answer. Past it a message is still
    #: heard (the personas read it when they next speak) but starts no answer of its own, so a flood
    #: spends neither the model nor the world's budget.
    messages: str | None = "10 per minute"
    #: The same for a moderator.
    moderator_messages: str | None = None

    @field_validator("commands", "files", "moderator_commands", "moderator_files", "messages", "moderator_messages")
    @classmethod
    def _is_a_rate(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            rates = parse_rates(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a rate: write it as COUNT per [N] second|minute|hour|day, "
                             "e.g. '3 per 10 minutes', or null for no limit") from None
        if len(rates) != 1:
            raise ValueError(f"{value!r} holds {len(rates)} rates: give one, e.g. '3 per 10 minutes'")
        if rates[0].amount < 1:
            raise ValueError(f"{value!r} allows nothing: give a count of 1 or more, or null for no limit")
        return value


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
    #: How often one person may run commands.
    rate_limits: CommandRateSettings = Field(default_factory=CommandRateSettings)
    #: Default talk policy of a new world: who answers a human message.
    default_policy: PolicyName = "everyone"
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
    #: Where the offline verification checks run: ``on``, in a process of their own (their CPU off
    #: the event loop, on another core), ``off``, in the bot's process, or ``auto``: a process of
    #: their own once the bot checks 50 messages a second, when the machine gives it a second core.
    verification_process: Literal["auto", "on", "off"] = "auto"
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
    #: Shards of the whole deployment (the same in every process). Unset: this process runs every
    #: shard, as many as Discord recommends.
    shard_count: int | None = None
    #: The shards this process runs, as ``0-3``, ``0,2,5`` or ``0-3,8`` (needs ``shard_count``);
    #: unset runs all of them. Only the process running shard 0 registers the slash commands.
    shard_ids: str | None = None

    @model_validator(mode="after")
    def _shards_exist(self) -> DiscordSettings:
        check_shards(self.shard_count, self.shards)
        return self

    @property
    def shards(self) -> list[int] | None:
        """The shard ids this process runs, or None for all."""
        return None if self.shard_ids is None else parse_shard_ids(self.shard_ids)


#: The bot scopes of ``config/slack-manifest.yaml``, asked for when a workspace installs the app.
SLACK_BOT_SCOPES = ("chat:write", "chat:write.customize", "commands", "channels:history", "groups:history",
                    "channels:read", "groups:read", "users:read", "usergroups:read", "files:write")


class SlackSettings(BaseModel):
    """How to reach Slack. Moderators come from ``bot`` (user ids, user-group ids, workspace admins)."""

    #: Bot token (``xoxb-…``) from OAuth & Permissions (``TROUPE_SLACK_BOT_TOKEN``), for one workspace.
    #: Not needed with ``client_id``: then each workspace's token comes from its installation.
    bot_token: SecretStr | None = None
    #: A Slack app for many workspaces: the app's Client ID (Basic Information → App Credentials,
    #: ``TROUPE_SLACK_CLIENT_ID``). Set, each workspace installs the app through ``install_path`` and its
    #: tokens are kept in the bot's database; needs HTTP mode (``troupe slack --http PORT``).
    client_id: str | None = None
    #: The app's Client Secret (``TROUPE_SLACK_CLIENT_SECRET``), with ``client_id``.
    client_secret: SecretStr | None = None
    #: The bot scopes a workspace grants on installing the app.
    scopes: list[str] = Field(default_factory=lambda: list(SLACK_BOT_SCOPES))
    #: With ``client_id``: the page that starts an installation (send people to ``PUBLIC_URL/slack/install``).
    install_path: str = "/slack/install"
    #: With ``client_id``: where Slack sends the installer back; add ``PUBLIC_URL`` + this path to the
    #: app's Redirect URLs (OAuth & Permissions).
    redirect_uri_path: str = "/slack/oauth_redirect"
    #: The address people reach this app at, e.g. ``https://troupe.example.com``; the redirect URL is
    #: this plus ``redirect_uri_path``. Unset, Slack uses the app's first Redirect URL.
    public_url: str | None = None
    #: Slack's page where a workspace approves the installation; a test points it at a local stand-in.
    authorize_url: str = "https://slack.com/oauth/v2/authorize"
    #: Seconds an installation link stays good (from opening ``install_path`` to Slack's redirect).
    install_link_ttl_s: int = Field(default=600, ge=1)
    #: With token rotation on: a workspace's token is refreshed when it expires within this many minutes.
    token_refresh_minutes: int = Field(default=120, ge=1)
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
    #: PostgreSQL for the bot's state instead of the SQLite file, as
    #: ``postgresql://USER:PASSWORD@HOST:5432/DATABASE``; unset keeps it in SQLite (``bot.database``).
    #: The response cache stays in SQLite (``llm.cache_path``).
    database_url: SecretStr | None = None
    log_level: str = "INFO"
    #: Seconds a worker's hold on a channel lasts unless renewed (every third of it). When several
    #: Troupe processes share one PostgreSQL database, a worker that dies loses its channels to the
    #: others this long after its last renewal.
    lease_s: float = Field(default=15.0, ge=1.0, le=600.0)
    #: Seconds a PostgreSQL server that went away (a restart, a failover) is tried again before the
    #: process gives up on it and stops; meanwhile storage operations wait. 0 gives up at once.
    database_reconnect_s: float = Field(default=60.0, ge=0.0, le=3600.0)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    bot: BotSettings = Field(default_factory=BotSettings)
    discord: DiscordSettings = Field(default_factory=DiscordSettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    #: What persona posts are checked for and what happens on a finding (per-channel overrides merge in).
    verification: VerificationPolicy = Field(default_factory=VerificationPolicy)
    #: Verification overrides for single channels, by channel key (``discord:1234``, ``slack:C0123``),
    #: e.g. ``{"slack:C0123": {"allowed_link_domains": ["example.com"], "pii_action": "block"}}``.
    channel_verification: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("database_url")
    @classmethod
    def _is_a_postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        url = value.get_secret_value().strip()
        if not url:
            return None
        scheme = url.split("://", 1)[0].lower() if "://" in url else None
        if scheme not in POSTGRES_SCHEMES:
            what = f"a {scheme}:// URL" if scheme else "not a URL"
            raise ValueError(f"it is {what}; only PostgreSQL is supported here: write it as "
                             "postgresql://USER:PASSWORD@HOST:5432/DATABASE, or unset it to keep the state in SQLite "
                             f"(bot.database, {ENV_PREFIX}BOT_DATABASE)")
        return SecretStr(url)

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
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, dotenv_settings]
        path = config_file()
        if path is not None:
            sources.append(InitSettingsSource(settings_cls, read_config_file(path)))
        return (*sources, file_secret_settings)


def config_file() -> Path | None:
    """The config file in use: the one ``TROUPE_CONFIG`` names (it must exist then), else
    ``troupe.yaml`` in the working folder if there is one."""
    named = os.environ.get("TROUPE_CONFIG")
    if named is None:
        default = Path(DEFAULT_CONFIG_FILE)
        return default if default.is_file() else None
    path = Path(named)
    if path.is_dir():
        raise SettingsError(f"TROUPE_CONFIG points to {path}, which is a folder: name the YAML file itself, "
                            f"e.g. {path / DEFAULT_CONFIG_FILE}")
    if not path.is_file():
        raise SettingsError(f"TROUPE_CONFIG points to {path}, which does not exist: create it, or unset TROUPE_CONFIG")
    return path


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings a YAML config file holds, by name; SettingsError says where it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SettingsError(f"the config file {path} is not UTF-8 text: save it as UTF-8") from None
    except OSError as error:
        raise SettingsError(f"cannot read the config file {path}: {error.strerror or error}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise SettingsError(f"the config file {path} is not valid YAML ({problem}{at}): fix it there") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(
            f"the config file {path} holds a {_yaml_kind(data)}, not settings by name: write them as sections, "
            "e.g. `llm:` and under it `  model: gpt-4o-mini`"
        )
    return data


def load_settings(**overrides: object) -> Settings:
    """The settings, checked; SettingsError names the config file or environment variable at fault
    and what to change, in one line (no traceback, no links)."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        problems = "; ".join(_explain(e) for e in error.errors(include_url=False))
        raise SettingsError(f"the settings could not be read: {problems}") from None
    except SourceError as error:
        raise SettingsError(f"the settings could not be read: {_explain_unparsed(error)}") from None
    _check_places(settings)
    return settings


def _yaml_kind(data: Any) -> str:
    return "list" if isinstance(data, list) else f"single value ({type(data).__name__})"


def _env_name(loc: tuple[str, ...]) -> str | None:
    """The environment variable set for the setting at ``loc`` (``TROUPE_LLM_TIMEOUT_S``), or for its
    section as a whole (``TROUPE_VERIFICATION_TOXICITY`` as JSON); names are case-insensitive."""
    present = {name.upper(): name for name in os.environ if name.upper().startswith(ENV_PREFIX)}
    for depth in (2, 1):
        if len(loc) >= depth:
            found = present.get(ENV_PREFIX + "_".join(loc[:depth]).upper())
            if found is not None:
                return found
    return None


def _in_config_file(loc: tuple[str, ...]) -> Path | None:
    """The config file, if it sets the setting at ``loc``."""
    try:
        path = config_file()
        values: Any = read_config_file(path) if path is not None else None
    except SettingsError:
        return None
    for key in loc:
        if not isinstance(values, dict) or key not in values:
            return None
        values = values[key]
    return path


def _source(loc: tuple[str, ...]) -> str:
    """Where the setting at ``loc`` came from, with what to do there."""
    name = _env_name(loc)
    if name is not None:
        return f"set by the environment variable {name}: correct or unset it"
    path = _in_config_file(loc)
    if path is not None:
        return f"set in {path}: correct it there"
    # A section's own check (several settings together): every place that sets part of it.
    places = sorted(n for n in os.environ if loc and n.upper().startswith(f"{ENV_PREFIX}{loc[0].upper()}_"))
    path = _in_config_file(loc[:1])
    places += [str(path)] if path is not None else []
    return f"check {', '.join(places)}" if places else f"check the config file and the {ENV_PREFIX} variables"


def _explain(error: Any) -> str:
    loc = tuple(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{'.'.join(loc) or 'settings'}: {message} ({_source(loc)})"


def _explain_unparsed(error: SourceError) -> str:
    """An environment variable pydantic-settings could not parse (a list or mapping that is not
    JSON), named, with what it must look like."""
    found = re.search(r'field "(\w+)"', str(error))
    section = found.group(1) if found else ""
    for name, value in os.environ.items():
        upper = name.upper()
        if not section or not upper.startswith(f"{ENV_PREFIX}{section.upper()}"):
            continue
        rest = upper.removeprefix(f"{ENV_PREFIX}{section.upper()}").lstrip("_").lower()
        annotation = _annotation(Settings, section, rest)
        if annotation is None or not _is_structured(annotation):
            continue
        try:
            json.loads(value)
        except ValueError:
            return f"{name} is not valid JSON: it must be {_json_example(annotation)}"
    return f"an environment variable of the {section or 'settings'} section could not be read ({error})"


def _annotation(model: type[BaseModel], section: str, rest: str) -> Any:
    field = model.model_fields.get(section)
    if field is None:
        return None
    if not rest:
        return field.annotation
    nested = field.annotation
    if isinstance(nested, type) and issubclass(nested, BaseModel) and rest in nested.model_fields:
        return nested.model_fields[rest].annotation
    return None


def _is_structured(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (list, dict, set, tuple):
        return True
    return isinstance(annotation, type) and (issubclass(annotation, (BaseModel, list, dict)))


def _json_example(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin in (list, set, tuple):
        item = (typing.get_args(annotation) or (str,))[0]
        sample = typing.get_args(item)[0] if typing.get_origin(item) is Literal else \
            {int: 123, Path: "/srv/troupe/personas"}.get(item, "123")
        return f"a JSON list, e.g. {json.dumps([sample])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        sample = next(({name: field.default} for name, field in annotation.model_fields.items()
                       if isinstance(field.default, (int, float, str))), {})
        return f"a JSON object, e.g. {json.dumps(sample)}"
    return 'a JSON object, e.g. {"key": "value"}'


def _check_places(settings: Settings) -> None:
    """A data folder that is a file, or a database path that is a folder, said before anything
    tries to write there."""
    data_dir = settings.data_dir
    blocking = next((p for p in (data_dir, *data_dir.parents) if p.exists()), None)
    if blocking is not None and not blocking.is_dir():
        what = "is a file" if blocking == data_dir else f"is inside {blocking}, which is a file"
        raise SettingsError(f"the data folder {data_dir} {what}: point it to a folder, which is created if "
                            f"missing ({_source(('data_dir',))})")
    if settings.database_path.is_dir():
        path = settings.database_path
        where = _source(("bot", "database")) if settings.bot.database is not None else \
            f"the default database path, in the data folder: move that folder away, or set {ENV_PREFIX}BOT_DATABASE"
        raise SettingsError(f"the database {path} is a folder, not a file: point it to a file, e.g. "
                            f"{path / 'troupe.db'} ({where})")
