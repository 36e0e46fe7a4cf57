"""Each platform as the people in a channel see it, for tests that hold every adapter to one contract.

A ``Chat`` owns a connected adapter and the stand-in behind it (the terminal, the in-memory records,
the fake Discord or the fake Slack): it makes a person speak or run a command there, and reads back
what the channel shows, what one person was told privately, the files shared, the typing indicator
and the status line. Discord and Slack run through their real client libraries against the fakes.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prompt_toolkit import PromptSession
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from adapters.base import (
    Adapter,
    AdapterEvent,
    ChannelRef,
    Identity,
    NoSuggestions,
    UserRef,
)
from adapters.console import ConsoleAdapter
from adapters.discord import DiscordAdapter
from adapters.memory import MemoryAdapter
from adapters.slack import SlackAdapter
from bots.commands import MENU
from config.settings import Settings
from tests.fakes.discord_server import ATTACH_FILES, BOT_PERMISSIONS, FakeDiscord
from tests.fakes.slack_server import DEFAULT_SCOPES, FakeSlack

# -- the fake Discord --------------------------------------------------------------------------


def discord_settings(tmp_path: Path, fake: FakeDiscord, **extra: Any) -> Settings:
    """Settings for a bot on ``fake``: its moderator role moderates, slash commands in its guild."""
    return Settings(
        data_dir=tmp_path,
        llm=extra.pop("llm", {"provider": "demo"}),
        bot={"moderator_roles": [str(fake.moderator_role.id)], **extra.pop("bot", {})},
        discord={"token": fake.token, "api_base": fake.api_base, "gateway_url": fake.gateway_url,
                 "guild_ids": [fake.guild_id], **extra.pop("discord", {})},
    )


@contextlib.asynccontextmanager
async def standalone_discord(tmp_path: Path, fake: FakeDiscord, **discord: Any) -> AsyncIterator[DiscordAdapter]:
    """The Discord adapter on its own, offering the application's commands (none answers them)."""
    adapter = DiscordAdapter(discord_settings(tmp_path, fake, discord=discord))
    adapter.attach(None, MENU, NoSuggestions())
    await adapter.connect()
    try:
        yield adapter
    finally:
        await adapter.disconnect()


# -- the fake Slack workspace ------------------------------------------------------------------

CHANNEL = "C0GENERAL"
MODERATOR = "U0MOD"
GUEST = "U0GUEST"
ADMIN = "U0ADMIN"
GROUP = "S0MODS"
GROUP_MEMBER = "U0GROUPIE"
#: The scopes of an app installed without ``chat:write.customize``: personas post through the bot.
NO_CUSTOMIZE = ("chat:write", "commands", "channels:history", "users:read", "usergroups:read", "files:write")


def slack_workspace(**options: Any) -> FakeSlack:
    """A fake Slack with #general, a moderator, a guest, an admin and a ``@moderators`` group of one."""
    fake = FakeSlack(**options)
    fake.add_channel(CHANNEL, "general")
    fake.add_user(MODERATOR, "mona")
    fake.add_user(GUEST, "gus")
    fake.add_user(ADMIN, "ada", is_admin=True)
    fake.add_user(GROUP_MEMBER, "gil")
    fake.add_usergroup(GROUP, "moderators", [GROUP_MEMBER])
    return fake


def slack_settings(tmp_path: Path, fake: FakeSlack, **extra: Any) -> Settings:
    """Settings for a bot in ``fake``'s workspace: Socket Mode, the moderator and the group moderate."""
    return Settings(
        data_dir=tmp_path,
        llm=extra.pop("llm", {"provider": "demo"}),
        bot={"moderator_user_ids": [MODERATOR], "moderator_roles": [GROUP], **extra.pop("bot", {})},
        slack={"bot_token": fake.bot_token, "app_token": fake.app_token, "signing_secret": fake.signing_secret,
               "api_base": fake.api_base, "post_interval_s": 0.02, "ping_interval_s": 0.5, "http_host": "127.0.0.1",
               **extra.pop("slack", {})},
    )


async def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``condition()`` holds, checking every few milliseconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting for the condition")
        await asyncio.sleep(0.02)


# -- every platform as its channel shows it ----------------------------------------------------


@dataclass(frozen=True)
class Shown:
    """One message as everyone in the channel sees it: who it shows as speaking, and the words."""

    speaker: str
    text: str
    #: Shown as the bot's own words (no persona named).
    by_bot: bool
    #: The platform's id of the message, where it has one a test can see.
    id: str | None = None
    #: The message as the platform holds it (the name leading it, when the bot posted for a persona).
    raw: str = ""


@dataclass(frozen=True)
class Setup:
    """How a platform is set up for a test: its name, and what the bot may do there."""

    platform: str
    #: Personas post through the bot with their name leading each piece (no webhooks / no customize).
    through_bot: bool = False
    #: The bot may share files in the channel.
    files: bool = True
    #: What the platform calls the bot.
    bot_name: str | None = None

    @property
    def id(self) -> str:
        return "-".join([self.platform] + ["through-the-bot"] * self.through_bot + ["no-files"] * (not self.files)
                        + [f"called-{self.bot_name}"] * bool(self.bot_name))


class Chat:
    """A connected adapter and the channel it talks in, as seen from the platform's side."""

    adapter: Adapter
    channel: ChannelRef
    #: The moderator, as the adapter describes them in their events.
    person: UserRef
    #: The platform shows when someone is typing.
    shows_typing: bool = True
    #: The platform has threads.
    threads: bool = True
    #: The platform can show a file in the channel.
    shares_files: bool = True
    #: What the platform calls the bot.
    bot_name: str = "Troupe"

    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        self._events: AsyncIterator[AdapterEvent] | None = None
        self._closed = False

    # -- lifetime

    async def start(self) -> None:
        await self.adapter.connect()
        self._events = aiter(self.adapter.listen())

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self.adapter.disconnect()

    # -- what people do there

    async def say(self, text: str, *, thread: str | None = None) -> None:
        """The moderator writes ``text`` in the channel (or in ``thread``)."""
        raise NotImplementedError

    async def run_command(self, text: str) -> None:
        """The moderator runs the bot's command with these words (``/troupe status``)."""
        raise NotImplementedError

    async def write_while_away(self, text: str, *, thread: str | None = None) -> None:
        """The guest writes ``text`` where the channel's (or ``thread``'s) history keeps it, while the bot
        is not listening."""
        raise NotImplementedError

    async def next_event(self, timeout: float = 10.0) -> AdapterEvent:
        assert self._events is not None
        return await asyncio.wait_for(anext(self._events), timeout)

    async def rest_of_events(self) -> list[AdapterEvent]:
        """Every event until ``listen`` ends."""
        assert self._events is not None
        return [event async for event in self._events]

    async def no_event_within(self, seconds: float) -> None:
        """Nothing more is heard for ``seconds``."""
        try:
            event = await self.next_event(timeout=seconds)
        except TimeoutError:
            return
        raise AssertionError(f"heard {event!r}")

    # -- what the channel shows

    def shown(self, thread: str | None = None) -> list[Shown]:
        """What everyone sees in the channel (or in ``thread``), oldest first."""
        raise NotImplementedError

    def private_to(self, user: UserRef) -> list[str]:
        """What only ``user`` was shown, oldest first."""
        raise NotImplementedError

    def files(self) -> list[tuple[str, bytes]]:
        """Files shared in the channel: (name, contents)."""
        raise NotImplementedError

    def typing_shown(self, identity: Identity) -> bool:
        raise NotImplementedError

    def status(self, handle: str) -> str | None:
        """What the status line ``handle`` shows now."""
        raise NotImplementedError

    def speaker_labels(self, raw: str) -> list[str]:
        """The names a message shows in bold as posters' labels ("**Priya Nair:**"), in order."""
        raise NotImplementedError

    def mass_mention(self) -> str:
        """Words that would notify everyone in the channel, and one person, were the platform to act on them."""
        raise NotImplementedError

    def pings(self, shown: Shown) -> list[str]:
        """Whom the message notified."""
        raise NotImplementedError

    # -- what the platform's staff do

    async def take_moderator_role(self) -> UserRef:
        """A person holding the moderator role (as the adapter described them), whose role an admin then
        takes away. Returns them as they were."""
        raise NotImplementedError

    async def drop_connection(self) -> None:
        """The network drops the adapter's connection; the platform accepts a new one."""
        raise NotImplementedError


def _persona_label(text: str, pattern: re.Pattern[str]) -> tuple[str, str] | None:
    """(speaker, words) of a post the bot made for a persona, its name leading in bold."""
    found = pattern.match(text)
    return (found.group(1), found.group(2)) if found else None


class ConsoleChat(Chat):
    """The terminal, typed into through a prompt; its transcript read back line by line."""

    shows_typing = True
    threads = False
    shares_files = False  # a terminal cannot show a file: the application saves it on the host

    def __init__(self, setup: Setup, tmp_path: Path) -> None:
        super().__init__(setup)
        self._pipe_context = create_pipe_input()
        self._pipe = self._pipe_context.__enter__()
        self._output = io.StringIO()
        console = Console(file=self._output, width=100_000, force_terminal=False)
        self.adapter = adapter = ConsoleAdapter(console=console, user_name="mona", journal_dir=tmp_path / "journal",
                                                prompt_session=PromptSession(input=self._pipe, output=DummyOutput()))
        self.channel = adapter.channel
        self.person = adapter.user
        self.bot_name = adapter.bot_identity.name

    async def close(self) -> None:
        await super().close()
        self._pipe_context.__exit__(None, None, None)

    async def say(self, text: str, *, thread: str | None = None) -> None:
        assert thread is None, "the console has no threads"
        self._pipe.send_text(text + "\r")

    async def run_command(self, text: str) -> None:
        self._pipe.send_text(f"/troupe {text}\r")

    async def write_while_away(self, text: str, *, thread: str | None = None) -> None:
        assert thread is None, "the console has no threads"
        # The terminal's journal keeps what was typed: a line the bot read but never answered.
        await self.say(text)
        await self.next_event()

    def _lines(self) -> list[tuple[str, str]]:
        """The transcript as (kind, line): a post's first line, its continuation, private, the bot's."""
        kinds = []
        for line in self._output.getvalue().splitlines():
            if re.match(r"\d\d:\d\d ", line):
                kinds.append(("post", line[6:]))
            elif line.startswith("  ") and kinds and kinds[-1][0] == "post":
                kinds[-1] = ("post", kinds[-1][1] + "\n" + line[2:])
            elif line.startswith("(only you) "):
                kinds.append(("private", line.removeprefix("(only you) ")))
            else:
                kinds.append(("bot", line))
        return kinds

    def shown(self, thread: str | None = None) -> list[Shown]:
        found = []
        for kind, line in self._lines():
            if kind == "post":
                speaker, _, text = line.partition(": ")
                found.append(Shown(speaker, text, by_bot=speaker == self.bot_name, raw=text))
            elif kind == "bot":
                found.append(Shown(self.bot_name, line, by_bot=True, raw=line))
        return found

    def private_to(self, user: UserRef) -> list[str]:
        return [line for kind, line in self._lines() if kind == "private"]

    def files(self) -> list[tuple[str, bytes]]:
        return []

    def typing_shown(self, identity: Identity) -> bool:
        status = self.adapter.status  # type: ignore[attr-defined]
        return status is not None and identity.name in status

    def status(self, handle: str) -> str | None:
        return self.adapter.status  # type: ignore[attr-defined]


class MemoryChat(Chat):
    """The in-memory platform: its records are what the channel shows."""

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        self.adapter = adapter = MemoryAdapter(bot_name=setup.bot_name or "Troupe")
        adapter.uploads = setup.files
        self.channel = adapter.channel("general")
        self.person = adapter.user("mod")
        self.bot_name = adapter.bot_identity.name

    @property
    def memory(self) -> MemoryAdapter:
        assert isinstance(self.adapter, MemoryAdapter)
        return self.adapter

    async def say(self, text: str, *, thread: str | None = None) -> None:
        self.memory.push_message(text, user=self.person.id, thread=thread)

    async def run_command(self, text: str) -> None:
        self.memory.push_command(text, user=self.person.id)

    async def write_while_away(self, text: str, *, thread: str | None = None) -> None:
        self.memory.write_while_away(text, user="guest", thread=thread)

    def shown(self, thread: str | None = None) -> list[Shown]:
        return [Shown(s.identity + (f" ({s.tag})" if s.tag else "") if s.identity else self.bot_name, s.text,
                      by_bot=s.by_bot or s.kind == "reply", id=s.message_id, raw=s.text)
                for s in self.memory.sent if s.kind in ("post", "reply") and s.channel == self.channel.id
                and s.thread == thread]

    def private_to(self, user: UserRef) -> list[str]:
        return [s.text for s in self.memory.sent if s.kind == "private" and s.user == user.id]

    def files(self) -> list[tuple[str, bytes]]:
        return [s.file for s in self.memory.sent if s.kind == "file" and s.file is not None]

    def typing_shown(self, identity: Identity) -> bool:
        return any(s.kind == "typing" and s.identity == identity.name for s in self.memory.sent)

    def status(self, handle: str) -> str | None:
        # The in-memory platform records each state of a status line; the last is what it shows.
        states = [s.text for s in self.memory.sent if s.kind == "progress" and s.channel == self.channel.id]
        return states[-1] if states else None

    async def take_moderator_role(self) -> UserRef:
        before = self.memory.user("mod", roles=("mods",))
        self.memory.members[before.id] = self.memory.user("mod", roles=())
        return before


class DiscordChat(Chat):
    """Real discord.py against the fake Discord, in #general."""

    #: A poster's name in bold leading a post the bot makes for a persona.
    LABEL = re.compile(r"\*\*(.+?):\*\* (.*)", re.DOTALL)

    def __init__(self, setup: Setup, tmp_path: Path) -> None:
        super().__init__(setup)
        permissions = BOT_PERMISSIONS if setup.files else BOT_PERMISSIONS & ~ATTACH_FILES
        self.fake = FakeDiscord(manage_webhooks=not setup.through_bot, bot_permissions=permissions,
                                bot_name=setup.bot_name or "Troupe")
        self._tmp_path = tmp_path
        self.bot_name = self.fake.bot_user.name

    async def start(self) -> None:
        await self.fake.start()
        self.adapter = DiscordAdapter(discord_settings(self._tmp_path, self.fake))
        self.adapter.attach(None, MENU, NoSuggestions())
        self.general = self.fake.channel_id("general")
        self.channel = ChannelRef(platform="discord", id=str(self.general))
        moderator = self.fake.moderator
        self.person = UserRef(id=str(moderator.id), name=moderator.name, roles=(str(self.fake.moderator_role.id),))
        await super().start()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await super().close()
        await self.fake.stop()

    async def say(self, text: str, *, thread: str | None = None) -> None:
        await self.fake.user_says(int(thread or self.general), text, user=self.fake.moderator)

    async def run_command(self, text: str) -> None:
        await self.fake.run_slash_command(f"troupe {text}", user=self.fake.moderator, channel_id=self.general)

    async def write_while_away(self, text: str, *, thread: str | None = None) -> None:
        # Discord's history keeps every message; the adapter hears this one too, and the test reads it off.
        await self.fake.user_says(int(thread or self.general), text, user=self.fake.guest)
        await self.next_event()

    def shown(self, thread: str | None = None) -> list[Shown]:
        found = []
        for message in self.fake.channel_messages(int(thread or self.general)):
            shown = {"id": str(message.id), "raw": message.content}
            if message.webhook_id is not None:
                found.append(Shown(message.author_name, message.content, by_bot=False, **shown))
            elif (labelled := _persona_label(message.content, self.LABEL)) is not None:
                found.append(Shown(*labelled, by_bot=False, **shown))
            else:
                found.append(Shown(message.author_name, message.content, by_bot=True, **shown))
        return found

    def private_to(self, user: UserRef) -> list[str]:
        return [m.content for m in self.fake.ephemeral(int(user.id)) + self.fake.dms(int(user.id))]

    def files(self) -> list[tuple[str, bytes]]:
        return [(a.filename, a.data) for m in self.fake.channel_messages(self.general) for a in m.attachments]

    def typing_shown(self, identity: Identity) -> bool:
        return self.general in self.fake.typing

    def status(self, handle: str) -> str | None:
        message = self.fake.find_message(int(handle.rpartition("/")[2]))
        return message.content if message is not None and not message.deleted else None

    def speaker_labels(self, raw: str) -> list[str]:
        return re.findall(r"(?<!\\)\*\*([^*\n]+?):(?<!\\)\*\*", raw)  # escaped marks are text, not bold

    def mass_mention(self) -> str:
        return f"@everyone @here <@{self.fake.guest.id}>"

    def pings(self, shown: Shown) -> list[str]:
        assert shown.id is not None
        message = self.fake.find_message(int(shown.id))
        assert message is not None
        return [str(u) for u in message.pinged_user_ids] + ["everyone"] * bool(message.payload.get("mention_everyone"))

    async def take_moderator_role(self) -> UserRef:
        before = self.person
        self.fake.moderator.role_ids.remove(self.fake.moderator_role.id)
        return before

    async def drop_connection(self) -> None:
        await self.fake.drop_gateway(4000)
        await self.fake.wait_until_ready(timeout=15)


class SlackChat(Chat):
    """Real slack-bolt / slack-sdk in Socket Mode against the fake Slack, in #general."""

    shows_typing = False  # Slack offers bots no typing indicator in channels
    #: A poster's name in bold leading a post the bot makes for a persona.
    LABEL = re.compile(r"\*(.+?):\* (.*)", re.DOTALL)

    def __init__(self, setup: Setup, tmp_path: Path) -> None:
        super().__init__(setup)
        scopes = NO_CUSTOMIZE if setup.through_bot else DEFAULT_SCOPES
        if not setup.files:
            scopes = tuple(s for s in scopes if s != "files:write")
        self.fake = slack_workspace(scopes=scopes, bot_name=setup.bot_name or "troupe")
        self._tmp_path = tmp_path
        self.channel = ChannelRef(platform="slack", id=CHANNEL)
        self.person = UserRef(id=MODERATOR, name="mona")
        self.bot_name = self.fake.bot_name

    async def start(self) -> None:
        await self.fake.start()
        self.adapter = SlackAdapter(slack_settings(self._tmp_path, self.fake))
        await super().start()
        await self.fake.wait_connected(1)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await super().close()
        await self.fake.close()

    async def say(self, text: str, *, thread: str | None = None) -> None:
        await self.fake.send_message(CHANNEL, MODERATOR, text, thread_ts=thread)

    async def run_command(self, text: str) -> None:
        envelope = await self.fake.send_slash_command(text, user_id=MODERATOR, channel_id=CHANNEL)
        assert await self.fake.wait_ack(envelope) is not None, "the slash command was not acknowledged"

    async def write_while_away(self, text: str, *, thread: str | None = None) -> None:
        # Stored in the channel, never delivered as an event: no socket was open to hear it.
        self.fake._user_message(self.fake.channels[CHANNEL], GUEST, text, thread)

    def shown(self, thread: str | None = None) -> list[Shown]:
        found = []
        for message in self.fake.channels[CHANNEL].messages:
            ts, in_thread = message["ts"], message.get("thread_ts")
            if message.get("bot_id") != self.fake.bot_id or message.get("subtype") == "file_share":
                continue
            # A thread is a message's replies: its first message shows in the channel and atop the thread.
            if (thread is None and in_thread not in (None, ts)) or (thread is not None and thread not in (in_thread, ts)):
                continue
            if message.get("subtype") == "bot_message":
                found.append(Shown(message["username"], message["text"], by_bot=False, id=ts, raw=message["text"]))
            elif (labelled := _persona_label(message["text"], self.LABEL)) is not None:
                found.append(Shown(*labelled, by_bot=False, id=ts, raw=message["text"]))
            else:
                found.append(Shown(self.bot_name, message["text"], by_bot=True, id=ts, raw=message["text"]))
        return found

    def private_to(self, user: UserRef) -> list[str]:
        return [e["text"] for e in self.fake.ephemerals if e["user"] == user.id]

    def files(self) -> list[tuple[str, bytes]]:
        return [(f["filename"], f["data"]) for f in self.fake.files if f["channel"] == CHANNEL]

    def typing_shown(self, identity: Identity) -> bool:
        return False

    def status(self, handle: str) -> str | None:
        message = self.fake.channels[CHANNEL].find(handle)
        return message["text"] if message is not None else None

    def speaker_labels(self, raw: str) -> list[str]:
        return re.findall(r"(?<![\w*])\*([^*\n]+?):\*", raw)  # Slack's bold, wherever it stands

    def mass_mention(self) -> str:
        return f"<!channel> <!here> <@{GUEST}>"

    def pings(self, shown: Shown) -> list[str]:
        return re.findall(r"<(?:!|@)[^>]*>", shown.raw)

    async def take_moderator_role(self) -> UserRef:
        before = UserRef(id=GROUP_MEMBER, name="gil", roles=(GROUP,))
        self.fake.usergroups[GROUP].users.remove(GROUP_MEMBER)
        return before

    async def drop_connection(self) -> None:
        await self.fake.drop_socket()
        await self.fake.wait_connected(2, timeout=15)


def new_chat(setup: Setup, tmp_path: Path) -> Chat:
    """The platform of ``setup``, not started yet."""
    if setup.platform == "console":
        return ConsoleChat(setup, tmp_path)
    if setup.platform == "memory":
        return MemoryChat(setup)
    if setup.platform == "discord":
        return DiscordChat(setup, tmp_path)
    if setup.platform == "slack":
        return SlackChat(setup, tmp_path)
    raise ValueError(f"no such platform: {setup.platform}")


#: Every platform, set up as a team would use it.
PLATFORMS = (Setup("console"), Setup("memory"), Setup("discord"), Setup("slack"))
#: Discord without Manage Webhooks and Slack without chat:write.customize: personas post through the bot.
THROUGH_THE_BOT = (Setup("discord", through_bot=True), Setup("slack", through_bot=True))


def on(*setups: Setup) -> pytest.MarkDecorator:
    """Run a test against these setups (the ``chat`` fixture's) instead of every platform."""
    return pytest.mark.parametrize("chat", setups, indirect=True, ids=lambda setup: setup.id)
