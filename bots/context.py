"""What a command handler may use: the invocation it answers, the channel's session, and the few
services commands work with, instead of the whole application."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.base import Adapter, ChannelRef, CommandInvocation, UserRef
from bots.commands import CommandSpec
from bots.focus_groups import FocusGroups
from bots.forks import Branches
from bots.interviews import Interviews
from bots.outbox import Outbox
from bots.permissions import ModeratorPolicy
from bots.reply import Reply
from bots.session import ChannelSession
from bots.session_manager import SessionManager
from bots.storage import Storage
from config import CONFIG_DIR
from config.settings import BotSettings
from simulation.file_access import ReadableFolders
from simulation.llm.factory import ModelStack

#: Runs one command: its context, then its arguments by name (as parsed), gives its answer.
Handler = Callable[..., Awaitable[Reply]]


@dataclass(frozen=True)
class CommandServices:
    """Shared by every command; built once by the application."""

    settings: BotSettings
    sessions: SessionManager
    storage: Storage
    outbox: Outbox
    stack: ModelStack
    permissions: ModeratorPolicy
    focus_groups: FocusGroups
    interviews: Interviews
    #: The branches forked from channels' worlds (``fork``).
    branches: Branches
    #: Runs work that outlives the command (a scenario's opening); the application waits for it when idle.
    spawn: Callable[[Awaitable[Any]], asyncio.Task]

    @property
    def model_name(self) -> str:
        return "offline demo model" if self.stack.model.is_demo else self.stack.model.name

    @property
    def model_label(self) -> str:
        return "offline demo model" if self.stack.model.is_demo else f"model {self.stack.model.name}"

    @property
    def model_by(self) -> str:
        """The model as named after "by" in a sentence: "by the offline demo model", "by model gpt-4o"."""
        return f"the {self.model_label}" if self.stack.model.is_demo else self.model_label


@dataclass(frozen=True)
class CommandContext:
    """One command being run."""

    invocation: CommandInvocation
    spec: CommandSpec
    #: The platform it came from.
    adapter: Adapter
    services: CommandServices
    #: The channel's session; None only for commands that need no world.
    found_session: ChannelSession | None = None
    #: The persona interviewed, when the command is a question written in an interview thread.
    interviewed: str | None = None

    @property
    def session(self) -> ChannelSession:
        """The channel's session, for the commands that need a world (they run only where there is one)."""
        assert self.found_session is not None, f"`{self.spec.name}` ran without a world"
        return self.found_session

    @property
    def user(self) -> UserRef:
        return self.invocation.user

    @property
    def channel(self) -> ChannelRef:
        return self.invocation.channel

    def readable_folders(self) -> ReadableFolders | None:
        """The folders the caller may have files read from, or None for any file.

        The console's user owns the machine and may load any file. Moderators on a chat platform may
        load only files inside the bundled folders and ``bot.file_dirs``, so nobody reads the host's
        files through the bot; whether a refused path exists is never said.
        """
        if self.channel.platform == "console":
            return None
        return ReadableFolders([CONFIG_DIR, *self.services.settings.file_dirs],
                               setting="the bundled folders and bot.file_dirs (troupe.yaml)")

    def readable_file(self, name: str) -> Path:
        """The file a command names, if its caller may read it (see ``readable_folders``)."""
        folders = self.readable_folders()
        return Path(name).expanduser() if folders is None else folders.file(name)
