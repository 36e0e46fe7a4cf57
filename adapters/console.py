"""The terminal as a chat platform: one channel, and the person at the keyboard is its moderator.

Interactive terminals get a prompt_toolkit prompt that stays at the bottom while personas post above
it. A script file, or stdin that is not a terminal, is fed line by line, each line only once the bot
has finished reacting to the previous one, so a transcript reads like a conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import stat
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from datetime import datetime
from pathlib import Path
from typing import IO, Any, TypeVar

from rich.color import Color, ColorParseError
from rich.console import Console, RenderableType
from rich.panel import Panel
from rich.style import Style
from rich.text import Text

from adapters.base import (
    ESCAPED,
    Adapter,
    AdapterError,
    AdapterEvent,
    Card,
    ChannelRef,
    CommandInvocation,
    Identity,
    IncomingMessage,
    UserRef,
    free_path,
    unescape,
    visible,
)

T = TypeVar("T")

#: Command words that end the session instead of reaching the bot.
QUIT_WORDS = frozenset({"quit", "exit"})
#: How long a "… is thinking" status lasts unless that persona posts first.
TYPING_SECONDS = 10.0
#: How a line the bot quotes begins (a Markdown "> " line of its replies).
QUOTE_BAR = "  │ "
#: Readable on dark and light backgrounds; a persona without a colour gets one of these by name.
PALETTE = (
    "#e06c75", "#98c379", "#e5c07b", "#61afef", "#c678dd", "#56b6c2",
    "#d19a66", "#7f9cf5", "#f472b6", "#34d399", "#fbbf24", "#a78bfa",
)

_INLINE = re.compile(r"\*\*(.+?)\*\*|`([^`]+)`|" + ESCAPED.pattern)


class _Quit:
    """Parsed from ``/quit``, ``/exit``: ``listen`` ends."""


class _Closed(Exception):
    """``disconnect`` was called while ``listen`` was waiting."""


def name_colour(name: str) -> str:
    """A colour for ``name`` that is the same in every run (``hash()`` is salted per process)."""
    digest = hashlib.sha256(name.casefold().encode()).digest()
    return PALETTE[digest[0] % len(PALETTE)]


def parse_line(line: str, channel: ChannelRef, user: UserRef, message_id: str) -> AdapterEvent | _Quit | None:
    """A typed line as an event: ``/troupe x`` and ``/x`` are commands, ``//x`` is the message ``/x``."""
    stripped = line.strip()
    if not stripped:
        return None
    if not stripped.startswith("/") or stripped.startswith("//"):
        text = stripped[1:] if stripped.startswith("//") else stripped
        return IncomingMessage(channel=channel, user=user, text=text, message_id=message_id)
    body = stripped[1:].strip()
    word, _, rest = body.partition(" ")
    if word.casefold() == "troupe":
        body = rest.strip()
        word = body.partition(" ")[0]
    if word.casefold() in QUIT_WORDS:  # "/quit now" leaves too
        return _Quit()
    return CommandInvocation(channel=channel, user=user, text=body or "help")


class ConsoleAdapter(Adapter):
    """This terminal: channel ``console:main``, the local user as its moderator."""

    def __init__(
        self,
        *,
        console: Console | None = None,
        script: Path | None = None,
        banner: RenderableType | None = None,
        stdin: IO[str] | None = None,
        prompt_session: Any | None = None,
        user_name: str | None = None,
        files_dir: Path | None = None,
        journal_dir: Path | None = None,
        wait_idle: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``console`` receives all output; ``script`` replaces keyboard input with a file's lines.

        ``prompt_session`` (a prompt_toolkit ``PromptSession``) forces interactive input through it;
        otherwise the prompt is used only when stdin is a terminal and so is the console's output.
        ``stdin`` replaces ``sys.stdin`` as the source of lines when there is no prompt.
        ``wait_idle`` (the application's) is awaited before each scripted line and before a script ends.
        """
        self.platform = "console"
        #: Progress of long work for the toolbar, and until when it shows.
        self._progress: tuple[str, float] | None = None
        #: Where the images of cards (charts) are saved, since a terminal cannot show them.
        self.files_dir = files_dir
        #: The terminal has no length limit; a persona's message is never split or cut.
        self.max_message_length = sys.maxsize
        self.explains_silence = True
        self.command_prefix = "/"
        self.on_host = True
        self.wait_idle = wait_idle
        self.channel = ChannelRef(platform="console", id="main", name="console")
        self.user = UserRef(id="local", name=user_name or _login_name(), can_manage=True)
        self._console = console if console is not None else Console(highlight=False)
        self._script = script
        self._script_lines: list[str] | None = None
        self._banner = banner
        self._stdin = stdin
        self._session = prompt_session
        self._last_id = 0
        #: The terminal's history, as a chat platform keeps one: what was typed (for ``catch_up``) and
        #: what was shown (for ``find_post``), each line written the moment it happens.
        self._journal = _Journal(journal_dir) if journal_dir is not None else None
        self._typing: dict[str, float] = {}
        #: Commands that could not be done (mistakes, refusals, errors): a script's exit status.
        self.failed_commands = 0
        self._closed = asyncio.Event()
        self._stack = contextlib.ExitStack()

    # -- state the application may show ---------------------------------------------------------

    @property
    def where(self) -> str:
        return "in the console channel"

    @property
    def interactive(self) -> bool:
        """Input comes from a person at a prompt (never held back), not from a script or a pipe."""
        if self._script is not None:
            return False
        if self._session is not None:
            return True
        return _isatty(self._stdin or sys.stdin) and self._console.is_terminal

    @property
    def status(self) -> str | None:
        """``Priya Nair is thinking…`` while someone is composing, else ``None``."""
        now = time.monotonic()
        self._typing = {name: until for name, until in self._typing.items() if until > now}
        names = [visible(name).replace("\n", " ") for name in self._typing]
        progress = visible(self._progress[0]) if self._progress and self._progress[1] > now else None
        if not names:
            return progress
        thinking = f"{names[0]} is thinking…" if len(names) == 1 else \
            f"{', '.join(names[:-1])} and {names[-1]} are thinking…"
        return f"{progress} · {thinking}" if progress else thinking

    # -- the contract ---------------------------------------------------------------------------

    async def connect(self) -> None:
        self._closed.clear()
        if self._script is not None:
            self._load_script(self._script)
        if self._banner is not None:
            self._print(Text(self._banner) if isinstance(self._banner, str) else self._banner)
        if self.interactive:
            self._start_prompt()

    async def listen(self) -> AsyncIterator[AdapterEvent]:
        scripted = not self.interactive
        lines = self._lines()
        try:
            while True:
                try:
                    line = await self._unless_closed(anext(lines, None))
                except _Closed:
                    return
                if line is None:
                    break
                if not line.strip() or (scripted and _is_comment(line)):
                    continue
                if scripted:
                    try:
                        await self._unless_closed(self._settle())
                    except _Closed:
                        return
                    self._print(Text(f"> {visible(line)}"))
                event = parse_line(line, self.channel, self.user, self._next_id())
                if isinstance(event, _Quit):
                    break
                if isinstance(event, IncomingMessage) and self._journal is not None:
                    self._journal.typed(event.message_id, event.text)
                if event is not None:
                    yield event
            if scripted:
                with contextlib.suppress(_Closed):
                    await self._unless_closed(self._settle())
        finally:
            await lines.aclose()

    async def post(self, channel: ChannelRef, identity: Identity, text: str, thread: str | None = None) -> str:
        return self._show(channel, identity, text)

    async def announce(self, channel: ChannelRef, text: str, thread: str | None = None) -> str:
        return self._show(channel, self.bot_identity, text)

    def _show(self, channel: ChannelRef, identity: Identity, text: str) -> str:
        """One post as a terminal line: time, name (and tag) in the poster's colour, the words."""
        self._check_channel(channel)
        self._typing.pop(identity.name, None)
        self._refresh_prompt()
        line = Text.assemble(
            (datetime.now().strftime("%H:%M") + " ", "dim"),
            (visible(identity.name), Style(color=_colour(identity), bold=True)),
            (f" ({visible(identity.tag)})" if identity.tag else "", "dim"),
            ": ",
            # Later lines of a post are indented: no line of it can pass for another post.
            visible(text).replace("\n", "\n  "),
        )
        self._print(line)
        message_id = self._next_id()
        if self._journal is not None:
            self._journal.shown(message_id, identity.name, text)
        return message_id

    async def catch_up(self, channel: ChannelRef, after: str) -> list[IncomingMessage]:
        """Lines typed after message ``after`` that the world may not have heard (the bot stopped first)."""
        if self._journal is None or channel.key != self.channel.key:
            return []
        return [IncomingMessage(channel=self.channel, user=self.user, text=entry["text"], message_id=entry["id"])
                for entry in self._journal.read(_Journal.TYPED) if entry["id"] > after]

    async def find_post(self, channel: ChannelRef, identity: Identity, text: str, thread: str | None,
                        since: datetime, taken: Collection[str] = ()) -> str | None:
        """A post already shown, as the journal of this terminal records it."""
        if self._journal is None:
            return None
        floor = f"{int((since.timestamp() - 5) * 1e9):020d}"
        oldest = None  # the same words shown twice are two messages: the earlier one is the earlier entry's
        for entry in reversed(self._journal.read(_Journal.SHOWN)):
            if entry["id"] < floor:
                break
            if entry["name"] == identity.name and entry["text"] == text and str(entry["id"]) not in taken:
                oldest = str(entry["id"])
        return oldest

    async def typing(self, channel: ChannelRef, identity: Identity | None = None) -> None:
        """Shown in the prompt's bottom toolbar; a script's transcript stays free of status noise."""
        name = (identity or self.bot_identity).name
        self._typing[name] = time.monotonic() + TYPING_SECONDS
        self._refresh_prompt()
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().call_later(TYPING_SECONDS + 0.05, self._refresh_prompt)

    def command_failed(self, invocation: CommandInvocation) -> None:
        self.failed_commands += 1

    async def stopped_typing(self, channel: ChannelRef, identity: Identity | None = None) -> None:
        """A persona that only thought leaves the status line at once, not after its 10 s."""
        if self._typing.pop((identity or self.bot_identity).name, None) is not None:
            self._refresh_prompt()

    async def reply_private(self, user: UserRef, channel: ChannelRef, text: str, *,
                            reply_token: str | None = None) -> None:
        line = Text("(only you) ")
        line.append_text(render_plain_markdown(text))
        line.stylize("dim")
        self._print(line)

    async def reply(self, invocation: CommandInvocation, text: str) -> None:
        self._print(render_plain_markdown(text))

    async def post_card(self, channel: ChannelRef, card: Card, *, invocation: CommandInvocation | None = None,
                        private: bool = False, thread: str | None = None) -> str | None:
        """A card as a panel: title, text, one line per field, the footer dim; its image saved to a file."""
        body = Text()
        if card.text:
            body.append_text(render_plain_markdown(card.text))
        for field in card.fields:
            if body:
                body.append("\n")
            body.append(f"{visible(field.label)}" + ("\n" if field.stacked else " "), style="bold")
            body.append_text(render_plain_markdown(field.value))
        if card.image is not None:
            saved = self._save_image(*card.image)
            body.append(f"\n{saved}", style="dim")
        if card.footer:
            body.append(f"\n{visible(card.footer)}", style="dim italic")
        colour = _parse_colour(card.colour)
        self._print(Panel(body, title=Text(visible(card.title), style="bold"), title_align="left",
                          border_style=Style(color=colour) if colour else "dim", expand=False))
        return self._next_id()

    async def progress(self, channel: ChannelRef, text: str, *, handle: str | None = None,
                       thread: str | None = None) -> str | None:
        """Shown in the prompt's bottom toolbar until the work ends; a script's transcript stays clean."""
        self._progress = (text, time.monotonic() + TYPING_SECONDS)
        self._refresh_prompt()
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().call_later(TYPING_SECONDS + 0.05, self._refresh_prompt)
        return "progress"

    def _save_image(self, filename: str, data: bytes) -> str:
        if self.files_dir is None:
            return f"(image {filename} not shown: the console cannot display images)"
        try:
            path = free_path(self.files_dir, filename)  # every chart is kept
            path.write_bytes(data)
        except OSError as error:
            return f"(could not save {filename}: {error.strerror or error})"
        return f"Chart saved to {path}"

    async def disconnect(self) -> None:
        self._closed.set()
        if self._journal is not None:
            self._journal.close()
        self._typing.clear()
        self._stack.close()

    # -- input sources --------------------------------------------------------------------------

    async def _lines(self) -> AsyncIterator[str]:
        if self._script is not None:
            for line in self._script_lines if self._script_lines is not None else self._load_script(self._script):
                yield line
        elif self.interactive:
            async for line in self._prompt_lines():
                yield line
        else:
            async for line in _stream_lines(self._stdin or sys.stdin):
                yield line

    def _load_script(self, script: Path) -> list[str]:
        try:
            self._script_lines = script.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise AdapterError(f"cannot read script {script}: {exc.strerror or exc}", retryable=False) from exc
        return self._script_lines

    async def _prompt_lines(self) -> AsyncIterator[str]:
        """Typed lines, read by a task of their own so the prompt stays up while the bot works."""
        if self._session is None:
            self._start_prompt()
        session = self._session
        assert session is not None
        typed: asyncio.Queue[str | None] = asyncio.Queue()

        async def read() -> None:
            try:
                while True:
                    line = await session.prompt_async("> ")
                    typed.put_nowait(line)
                    if isinstance(parse_line(line, self.channel, self.user, ""), _Quit):
                        break
            except (EOFError, KeyboardInterrupt):
                pass
            finally:
                typed.put_nowait(None)

        reader = asyncio.create_task(read())
        try:
            while (line := await typed.get()) is not None:
                yield line
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    def _start_prompt(self) -> None:
        """One prompt session for the whole run; output printed meanwhile appears above the prompt."""
        if self._session is None:
            from prompt_toolkit import PromptSession
            from prompt_toolkit.history import InMemoryHistory
            from prompt_toolkit.styles import Style as PromptStyle

            self._session = PromptSession(
                history=InMemoryHistory(),
                style=PromptStyle.from_dict({"bottom-toolbar": "noreverse italic #888888"}),
            )
            if self._console.file is sys.stdout:
                self._stack.enter_context(_patched_stdout())

    def _refresh_prompt(self) -> None:
        """Show or hide the status toolbar (prompt_toolkit hides it when the attribute is None)."""
        session = self._session
        if session is None:
            return
        session.bottom_toolbar = (lambda: self.status or "") if self.status else None
        if session.app.is_running:
            session.app.invalidate()

    # -- helpers --------------------------------------------------------------------------------

    async def _settle(self) -> None:
        if self.wait_idle is not None:
            await self.wait_idle()

    async def _unless_closed(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable`` unless ``disconnect`` comes first (then raise _Closed)."""
        if self._closed.is_set():
            if asyncio.iscoroutine(awaitable):
                awaitable.close()
            raise _Closed
        work = asyncio.ensure_future(awaitable)
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            done, _ = await asyncio.wait({work, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
            if not work.done():
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await work
        if work in done:
            return work.result()
        raise _Closed

    def _print(self, renderable: RenderableType) -> None:
        # Lines wrap where the terminal does (copyable); panels lay themselves out to its width.
        self._console.print(renderable, soft_wrap=isinstance(renderable, Text), highlight=False)

    def _check_channel(self, channel: ChannelRef) -> None:
        if channel.platform != self.platform or channel.id != self.channel.id:
            raise AdapterError(f"the console has only {self.channel.key}, not {channel.key}", retryable=False)

    def _next_id(self) -> str:
        """Increasing and unique across runs too: a world remembers the ids of the messages it heard,
        and ``catch_up`` reads the typed lines after one."""
        self._last_id = max(self._last_id + 1, time.time_ns())
        return f"{self._last_id:020d}"


class _Journal:
    """Append-only JSON-lines files of what was typed and what was shown, flushed line by line.

    A process killed between showing a post and recording that it was posted still finds the post
    here at restart; a line typed but not yet heard is read back by ``catch_up``.
    """

    TYPED, SHOWN = "console-typed.jsonl", "console-shown.jsonl"
    #: Above this size a journal keeps only its newer half.
    MAX_BYTES = 2_000_000

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self._files: dict[str, IO[str]] = {}
        for name in (self.TYPED, self.SHOWN):
            path = folder / name
            if path.exists() and path.stat().st_size > self.MAX_BYTES:
                kept = path.read_text(encoding="utf-8").splitlines()[-2000:]
                path.write_text("\n".join(kept) + "\n", encoding="utf-8")
            self._files[name] = path.open("a", encoding="utf-8")

    def typed(self, message_id: str, text: str) -> None:
        self._append(self.TYPED, {"id": message_id, "text": text})

    def shown(self, message_id: str, name: str, text: str) -> None:
        self._append(self.SHOWN, {"id": message_id, "name": name, "text": text})

    def _append(self, name: str, entry: dict[str, str]) -> None:
        handle = self._files[name]
        handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
        handle.flush()

    def read(self, name: str) -> list[dict[str, str]]:
        entries = []
        for line in (self.folder / name).read_text(encoding="utf-8").splitlines():
            try:
                entries.append(json.loads(line))
            except ValueError:  # a line cut short by a crash
                continue
        return entries

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()


def render_plain_markdown(text: str) -> Text:
    """Command output with the common Markdown marks turned into styles: headings, bullets, bold, code."""
    text = visible(text)
    out = Text()
    for index, line in enumerate(text.split("\n")):
        if index:
            out.append("\n")
        heading = re.match(r"#{1,6}\s+(.*)", line)
        if heading:
            out.append(unescape(heading.group(1)), style="bold underline")
            continue
        quote = re.match(r"> ?(.*)", line)
        if quote:
            # Someone else's words the bot quotes: under a bar, as chat clients show a quote, and
            # never starting a line the way the console echoes what was typed ("> ...").
            out.append(QUOTE_BAR, style="dim")
            line = quote.group(1)
        bullet = re.match(r"(\s*)[-*]\s+(.*)", line)
        if bullet:
            out.append(f"{bullet.group(1)}• ")
            line = bullet.group(2)
        position = 0
        for mark in _INLINE.finditer(line):
            out.append(line[position : mark.start()])
            if mark.group(1) is not None:
                out.append(unescape(mark.group(1)), style="bold")
            elif mark.group(2) is not None:
                out.append(mark.group(2), style="cyan")
            else:  # an escaped markup character stands for itself
                out.append(mark.group(3))
            position = mark.end()
        out.append(line[position:])
    return out


async def _stream_lines(stream: IO[str]) -> AsyncIterator[str]:
    """Lines of a non-terminal stdin without blocking the event loop.

    Pipes, sockets and terminals are read through the event loop; regular files, ``/dev/null`` and
    in-memory streams (which the loop cannot watch) on a worker thread, where a read never waits long.
    """
    reader = await _pipe_reader(stream)
    if reader is None:
        while line := await asyncio.to_thread(stream.readline):
            yield line.rstrip("\r\n")
        return
    stream_reader, transport, fd = reader
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        while raw := await stream_reader.readline():
            yield raw.decode(encoding, errors="replace").rstrip("\r\n")
    finally:
        transport.close()
        with contextlib.suppress(OSError):
            os.set_blocking(fd, True)


async def _pipe_reader(stream: IO[str]) -> tuple[asyncio.StreamReader, asyncio.BaseTransport, int] | None:
    try:
        fd = stream.fileno()
        mode = os.fstat(fd).st_mode
        # Only these can be watched by the loop: epoll refuses regular files and /dev/null.
        if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(fd)):
            return None
        # A duplicate, so closing the transport leaves the process's stdin open.
        pipe = os.fdopen(os.dup(fd), "rb", buffering=0)
    except (OSError, ValueError, AttributeError):
        return None
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    try:
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    except (OSError, ValueError, NotImplementedError):
        pipe.close()
        return None
    return reader, transport, fd


@contextlib.contextmanager
def _patched_stdout() -> Any:
    """Route prints through prompt_toolkit so they land above the prompt, colours intact."""
    from prompt_toolkit.patch_stdout import patch_stdout

    with patch_stdout(raw=True):
        yield


def _colour(identity: Identity) -> str:
    return _parse_colour(identity.colour) or name_colour(identity.name)


def _parse_colour(colour: str | None) -> str | None:
    if not colour:
        return None
    try:
        Color.parse(colour)
    except ColorParseError:
        return None
    return colour


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _login_name() -> str:
    return os.environ.get("USER") or "you"
