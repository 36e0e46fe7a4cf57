"""The names the bot suggests while someone types a command (Discord's autocomplete)."""

from __future__ import annotations

from adapters.base import ChannelRef, Suggestions
from bots.session_manager import SessionManager
from simulation.persona import bundled_personas, load_persona


class PersonaSuggestions(Suggestions):
    """The personas of a channel's world, and the bundled ones (read once, when first asked)."""

    def __init__(self, sessions: SessionManager) -> None:
        self.sessions = sessions
        self._bundled: list[str] | None = None

    def personas(self, channel: ChannelRef) -> list[str]:
        session = self.sessions.get(channel.key)
        return [agent.name for agent in session.world.agents] if session is not None else []

    def bundled_personas(self) -> list[str]:
        if self._bundled is None:
            self._bundled = sorted({load_persona(path).name for path in set(bundled_personas().values())})
        return self._bundled
