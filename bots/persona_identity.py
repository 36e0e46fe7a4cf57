"""How a persona's posts appear in a channel: its name, avatar, colour and the labels they carry."""

from __future__ import annotations

import hashlib
from urllib.parse import quote

from adapters.base import Identity
from bots.persona_names import impersonated
from bots.services import Services
from bots.session_config import SessionConfig
from config.settings import BotSettings

#: Identities a channel keeps made (a few per persona); past this they are made again as needed.
IDENTITIES_KEPT = 256

PALETTE = ("#e06c75", "#61afef", "#98c379", "#c678dd", "#e5c07b", "#56b6c2", "#d19a66", "#be5046", "#7ec699", "#f08dbb")


def identity_for(name: str, settings: BotSettings, *, demo: bool = False) -> Identity:
    digest = hashlib.sha256(name.encode()).digest()
    return Identity(
        tag="demo model" if demo else None,
        name=name,
        avatar_url=settings.avatar_url_template.replace("{seed}", quote(name)) if settings.avatar_url_template else None,
        colour=PALETTE[digest[0] % len(PALETTE)],
    )


class Identities:
    """The identities of one channel's personas, labelled as the channel's settings and platform require."""

    def __init__(self, services: Services, platform: str, config: SessionConfig) -> None:
        self._services = services
        self._platform = platform
        self._config = config
        #: Identities made so far, by everything they depend on (identities are immutable): every
        #: post and typing indicator asks for one, and the look-alike check behind it is not free.
        self._made: dict[tuple[object, ...], Identity] = {}

    def of(self, name: str) -> Identity:
        """How ``name``'s posts appear: its name, avatar, colour and the labels they must carry.

        A persona stored before its name was refused (one that could pass for the bot or the
        platform) keeps its words and memories, and every post of it is labelled as a persona's.
        """
        demo = self._services.model.is_demo
        red_team = name in self._config.red_team_personas
        taken = self.names_taken()
        key = (name, demo, red_team, taken, self._services.settings.avatar_url_template, self._config.branch)
        identity = self._made.get(key)
        if identity is None:
            if len(self._made) >= IDENTITIES_KEPT:
                self._made.clear()
            identity = self._made[key] = self._make(name, demo=demo, red_team=red_team, taken=taken)
        return identity

    def _make(self, name: str, *, demo: bool, red_team: bool, taken: tuple[tuple[str, ...], tuple[str, ...]]) -> Identity:
        identity = identity_for(name, self._services.settings, demo=demo)
        tags = [identity.tag] if identity.tag else []
        if red_team:
            tags.insert(0, "red-team simulation")
        if impersonated(name, *taken):
            tags.insert(0, "simulated persona")
        if self._config.branch:
            tags.insert(0, f"branch {self._config.branch}")
        return identity.model_copy(update={"tag": ", ".join(tags) or None})

    def names_taken(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The names the bot goes by on this channel's platform, and the words the platform refuses in
        a poster's name (none known where the platform is not connected; "Troupe" is refused anyway)."""
        adapter = self._services.adapters.get(self._platform)
        if adapter is None:
            return (), ()
        return adapter.bot_names, adapter.refused_name_parts
