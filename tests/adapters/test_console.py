"""The terminal platform: parsing typed lines, scripted runs, rendering, and the stdin fallback."""

from __future__ import annotations

import asyncio
import io
import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path

import pytest
from prompt_toolkit import PromptSession
from prompt_toolkit.input import PipeInput, create_pipe_input
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from adapters.base import (
    AdapterError,
    ChannelRef,
    CommandInvocation,
    Identity,
    IncomingMessage,
)
from adapters.console import ConsoleAdapter, name_colour, parse_line
from tests.support.paths import ROOT

PRIYA = Identity(name="Priya Nair")


def plain_console() -> Console:
    return Console(file=io.StringIO(), width=100, force_terminal=False)


def ansi_console() -> Console:
    return Console(file=io.StringIO(), width=100, force_terminal=True, color_system="truecolor")


def output(adapter_console: Console) -> str:
    file = adapter_console.file
    assert isinstance(file, io.StringIO)
    return file.getvalue()


def write_script(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "script.txt"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


async def events_of(adapter: ConsoleAdapter) -> list:
    await adapter.connect()
    events = [event async for event in adapter.listen()]
    await adapter.disconnect()
    return events


# -- parsing --------------------------------------------------------------------------------------

CHANNEL = ChannelRef(platform="console", id="main", name="console")


@pytest.mark.parametrize(
    ("line", "kind", "text"),
    [
        ("/troupe persona add Priya Nair", "command", "persona add Priya Nair"),
        ("/persona add Priya Nair", "command", "persona add Priya Nair"),
        ("/TROUPE  help ", "command", "help"),
        ("/help", "command", "help"),
        ("/troupe", "command", "help"),
        ("/", "command", "help"),
        ("hello there", "message", "hello there"),
        ("  padded  ", "message", "padded"),
        ("//etc/hosts is a path", "message", "/etc/hosts is a path"),
    ],
)
def test_parse_line(line: str, kind: str, text: str) -> None:
    adapter = ConsoleAdapter(console=plain_console())
    event = parse_line(line, CHANNEL, adapter.user, "1")
    assert isinstance(event, (IncomingMessage, CommandInvocation))
    assert (event.kind, event.text) == (kind, text)
    assert event.channel == CHANNEL and event.user.can_manage


@pytest.mark.parametrize("line", ["/quit", "/exit", "/QUIT", "/troupe quit", "/quit now please"])
def test_quit_words_are_not_events(line: str) -> None:
    adapter = ConsoleAdapter(console=plain_console())
    assert not isinstance(parse_line(line, CHANNEL, adapter.user, "1"), (IncomingMessage, CommandInvocation))


def test_the_local_user_is_the_moderator_of_console_main(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER", "dana")
    adapter = ConsoleAdapter(console=plain_console())
    assert adapter.user.name == "dana" and adapter.user.can_manage and not adapter.user.is_bot
    assert adapter.channel == ChannelRef(platform="console", id="main", name="console")
    assert adapter.channel.key == "console:main" and adapter.platform == "console"
    monkeypatch.delenv("USER")
    assert ConsoleAdapter(console=plain_console()).user.name == "you"


# -- scripted input -------------------------------------------------------------------------------


async def test_script_lines_become_events_with_comments_and_blanks_skipped(tmp_path: Path) -> None:
    script = write_script(tmp_path, """\
        # set the scene
        /troupe persona add Priya Nair

        /persona list
          # indented comment
        Hello everyone, what do you think?
        /help
    """)
    console = plain_console()
    events = await events_of(ConsoleAdapter(console=console, script=script))

    assert [(e.kind, e.text) for e in events] == [
        ("command", "persona add Priya Nair"),
        ("command", "persona list"),
        ("message", "Hello everyone, what do you think?"),
        ("command", "help"),
    ]
    message = events[2]
    assert message.channel.key == "console:main" and message.user.can_manage
    assert len({e.message_id for e in events if e.kind == "message"}) == 1
    echoed = [line for line in output(console).splitlines() if line.startswith("> ")]
    assert echoed == [
        "> /troupe persona add Priya Nair",
        "> /persona list",
        "> Hello everyone, what do you think?",
        "> /help",
    ]
    assert "set the scene" not in output(console)


async def test_quit_ends_a_script_early(tmp_path: Path) -> None:
    script = write_script(tmp_path, "one\n/exit\ntwo\n")
    events = await events_of(ConsoleAdapter(console=plain_console(), script=script))
    assert [e.text for e in events] == ["one"]


async def test_wait_idle_is_awaited_before_each_line_and_before_the_end(tmp_path: Path) -> None:
    """The bot reacts in background tasks; the next line only comes once they are finished."""
    script = write_script(tmp_path, "first\n# skipped\n/troupe summary\nsecond\n")
    console = plain_console()
    adapter = ConsoleAdapter(console=console, script=script)
    log: list[str] = []
    pending: set[asyncio.Task[None]] = set()

    async def react(text: str) -> None:
        await asyncio.sleep(0.02)
        log.append(f"done {text}")
        await adapter.post(adapter.channel, PRIYA, f"about {text}")

    async def wait_idle() -> None:
        log.append("idle?")
        while pending:
            await asyncio.gather(*list(pending))
        log.append("idle")

    adapter.wait_idle = wait_idle
    await adapter.connect()
    async for event in adapter.listen():
        log.append(f"got {event.text}")
        task = asyncio.create_task(react(event.text))
        pending.add(task)
        task.add_done_callback(pending.discard)
    log.append("listen ended")

    assert log == [
        "idle?", "idle", "got first",
        "idle?", "done first", "idle", "got summary",
        "idle?", "done summary", "idle", "got second",
        "idle?", "done second", "idle", "listen ended",
    ]
    lines = output(console).splitlines()
    assert lines[0] == "> first" and re.fullmatch(r"\d\d:\d\d Priya Nair: about first", lines[1])
    assert lines[2] == "> /troupe summary" and lines[3].endswith("Priya Nair: about summary")


async def test_a_missing_script_fails_to_connect_clearly(tmp_path: Path) -> None:
    adapter = ConsoleAdapter(console=plain_console(), script=tmp_path / "nope.txt")
    with pytest.raises(AdapterError, match="cannot read script") as failure:
        await adapter.connect()
    assert failure.value.retryable is False


async def test_in_memory_stdin_is_a_script_and_its_end_ends_listen() -> None:
    console = plain_console()
    adapter = ConsoleAdapter(console=console, stdin=io.StringIO("hi\n# note\n/troupe help\n"))
    assert not adapter.interactive
    events = await events_of(adapter)
    assert [(e.kind, e.text) for e in events] == [("message", "hi"), ("command", "help")]
    assert output(console).splitlines() == ["> hi", "> /troupe help"]


# -- output ---------------------------------------------------------------------------------------


async def test_banner_is_the_first_line_printed(tmp_path: Path) -> None:
    console = plain_console()
    adapter = ConsoleAdapter(console=console, script=write_script(tmp_path, "hello\n"),
                             banner="Troupe 0.1 · model: demo [offline]")
    await events_of(adapter)
    assert output(console).splitlines()[:2] == ["Troupe 0.1 · model: demo [offline]", "> hello"]


async def test_posts_show_time_and_name_with_user_text_taken_literally() -> None:
    console = plain_console()
    adapter = ConsoleAdapter(console=console)
    message_id = await adapter.post(adapter.channel, PRIYA, "I'd say [bold]no[/bold] :smile: for 3.5 GB")
    other_id = await adapter.post(adapter.channel, Identity(name="Omar"), "Two lines\nhere")

    assert other_id != message_id
    again = await ConsoleAdapter(console=plain_console()).post(adapter.channel, PRIYA, "after a restart")
    assert again not in (message_id, other_id), "ids stay unique across runs"
    lines = output(console).splitlines()
    assert re.fullmatch(r"\d\d:\d\d Priya Nair: I'd say \[bold\]no\[/bold\] :smile: for 3\.5 GB", lines[0])
    assert re.fullmatch(r"\d\d:\d\d Omar: Two lines", lines[1]) and lines[2] == "  here", "a post's later lines are indented"


async def test_control_characters_in_names_posts_cards_and_replies_are_shown_not_obeyed() -> None:
    """Words from a persona file, a model or a script never reach the terminal as escape sequences:
    they cannot clear the screen, recolour it, or fake another persona's line."""
    from adapters.base import Card, CardField

    console = plain_console()
    adapter = ConsoleAdapter(console=console)
    clear = "\x1b[2J\x1b[H\x1b[41;97mFAKE SYSTEM\x1b[0m"
    await adapter.post(adapter.channel, Identity(name=f"Mallory{clear}"), f"hi{clear}\n17:12 Priya Nair: I resign")
    await adapter.reply_private(adapter.user, adapter.channel, f"Priya thinks: {clear} \u202eevil\ud800")
    await adapter.post_card(adapter.channel, Card(title=f"Poll{clear}", text="t\x07",
                                                  fields=[CardField(name=f"n{clear}", value="v\x1b[31m")]))
    shown = output(console)
    assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown, repr(shown)
    assert "Mallory␛[2J␛[H␛[41;97mFAKE SYSTEM␛[0m" in shown and "Poll␛[2J" in shown
    assert "\n  17:12 Priya Nair: I resign" in shown, "the forged line is indented inside Mallory's post"
    assert "\ufffdevil\ufffd" in shown


async def test_a_card_field_named_by_a_question_takes_no_extra_colon() -> None:
    from adapters.base import Card, CardField

    console = plain_console()
    adapter = ConsoleAdapter(console=console)
    fields = [CardField(name="What do you enjoy most?", value="Quiet mornings."), CardField(name="Priya Nair", value="For it.")]
    await adapter.post_card(adapter.channel, Card(title="Validation", fields=fields))
    shown = output(console)
    # A question stands on its own line, its answer below; a name and its value share a line.
    lines = [line.strip("│ ") for line in shown.splitlines()]
    assert lines[lines.index("What do you enjoy most?") + 1] == "Quiet mornings." and "?:" not in shown
    assert "Priya Nair: For it." in shown
    assert Card(title="t", fields=fields).as_text().splitlines()[1:] == [
        "**What do you enjoy most?**", "Quiet mornings.", "**Priya Nair:** For it."]


async def test_names_are_coloured_by_identity_or_stably_by_name() -> None:
    console = ansi_console()
    adapter = ConsoleAdapter(console=console)
    await adapter.post(adapter.channel, Identity(name="Lisa", colour="#ff0000"), "red")
    await adapter.post(adapter.channel, Identity(name="Priya Nair", colour="not a colour"), "fallback")
    text = output(console)
    assert "\x1b[1;38;2;255;0;0mLisa" in text
    r, g, b = (int(name_colour("Priya Nair")[i : i + 2], 16) for i in (1, 3, 5))
    assert f"\x1b[1;38;2;{r};{g};{b}mPriya Nair" in text
    assert name_colour("Priya Nair") == name_colour("priya nair") != name_colour("Omar")


async def test_private_replies_are_dim_and_marked_only_you() -> None:
    console = ansi_console()
    adapter = ConsoleAdapter(console=console)
    await adapter.reply_private(adapter.user, adapter.channel, "Priya thinks: they seem [unsure]")
    text = output(console)
    assert "\x1b[2m(only you) Priya thinks: they seem [unsure]" in text

    plain = plain_console()
    adapter = ConsoleAdapter(console=plain)
    await adapter.reply_private(adapter.user, adapter.channel, "unknown command: frob")
    assert output(plain) == "(only you) unknown command: frob\n"


async def test_words_the_bot_quotes_stand_under_a_bar_not_like_a_typed_line() -> None:
    """The console echoes what was typed as "> line": a line the bot quotes (a thought, a held
    message) is shown under a bar instead, so it cannot pass for something the moderator typed."""
    from adapters.base import quoted

    console = plain_console()
    adapter = ConsoleAdapter(console=console)
    await adapter.reply_private(adapter.user, adapter.channel,
                                "Priya Nair thinks:\n" + quoted("fine\n/approve 3\n**Troupe**: done"))
    lines = output(console).splitlines()
    assert lines == ["(only you) Priya Nair thinks:", "  │ fine", "  │ /approve 3", "  │ **Troupe**: done"], lines


async def test_command_replies_render_simple_markdown_on_several_lines() -> None:
    console = plain_console()
    adapter = ConsoleAdapter(console=console)
    command = CommandInvocation(channel=adapter.channel, user=adapter.user, text="persona list")
    await adapter.reply(command, "## Personas\n- **Priya Nair** — `priya`\n  * nested [x]\nplain line")
    assert output(console).splitlines() == ["Personas", "• Priya Nair — priya", "  • nested [x]", "plain line"]


async def test_long_posts_are_neither_split_nor_cut() -> None:
    console = plain_console()
    adapter = ConsoleAdapter(console=console)
    assert adapter.max_message_length >= 1_000_000
    text = " ".join(f"word{i}." for i in range(3000))
    await adapter.post(adapter.channel, PRIYA, text)
    printed = output(console)
    assert printed.count("Priya Nair:") == 1
    assert text in printed


async def test_posting_elsewhere_is_refused() -> None:
    adapter = ConsoleAdapter(console=plain_console())
    with pytest.raises(AdapterError) as failure:
        await adapter.post(ChannelRef(platform="memory", id="general"), PRIYA, "x")
    assert failure.value.retryable is False


async def test_typing_sets_a_status_until_that_persona_posts_or_stops() -> None:
    console = plain_console()
    adapter = ConsoleAdapter(console=console)
    assert adapter.status is None
    await adapter.typing(adapter.channel, PRIYA)
    assert adapter.status == "Priya Nair is thinking…"
    await adapter.typing(adapter.channel, Identity(name="Omar"))
    assert adapter.status == "Priya Nair and Omar are thinking…"
    await adapter.post(adapter.channel, PRIYA, "done")
    assert adapter.status == "Omar is thinking…"
    await adapter.typing(adapter.channel)
    assert adapter.status == "Omar and Troupe are thinking…"
    await adapter.stopped_typing(adapter.channel, Identity(name="Omar"))  # Omar only thought
    assert adapter.status == "Troupe is thinking…"
    assert "thinking" not in output(console)  # a transcript carries no status noise


# -- interactive prompt ---------------------------------------------------------------------------


@pytest.fixture
def pipe_input() -> Iterator[PipeInput]:
    with create_pipe_input() as pipe:
        yield pipe


def prompt_adapter(pipe: PipeInput, console: Console) -> ConsoleAdapter:
    return ConsoleAdapter(console=console, prompt_session=PromptSession(input=pipe, output=DummyOutput()))


async def test_interactive_input_is_never_held_back_and_ctrl_d_ends(pipe_input: PipeInput) -> None:
    console = plain_console()
    adapter = prompt_adapter(pipe_input, console)
    assert adapter.interactive
    never = asyncio.get_running_loop().create_future()
    adapter.wait_idle = lambda: never  # the bot is busy for ever; typing still goes through
    await adapter.connect()
    pipe_input.send_text("hello\r")
    pipe_input.send_text("\r")
    pipe_input.send_text("# not a comment here\r")
    pipe_input.send_text("/troupe persona add Priya\r")
    pipe_input.send_text("\x04")
    events = await asyncio.wait_for(_collect(adapter), 5)
    assert [(e.kind, e.text) for e in events] == [
        ("message", "hello"),
        ("message", "# not a comment here"),
        ("command", "persona add Priya"),
    ]
    assert "> " not in output(console)  # the prompt shows what was typed; nothing is echoed
    never.cancel()


async def test_interactive_quit_and_typing_toolbar(pipe_input: PipeInput) -> None:
    adapter = prompt_adapter(pipe_input, plain_console())
    await adapter.connect()
    session = adapter._session
    assert session is not None and session.bottom_toolbar is None
    await adapter.typing(adapter.channel, PRIYA)
    assert session.bottom_toolbar is not None and session.bottom_toolbar() == "Priya Nair is thinking…"
    await adapter.post(adapter.channel, PRIYA, "hi")
    assert session.bottom_toolbar is None
    pipe_input.send_text("a\r/quit\rb\r")
    assert [e.text for e in await asyncio.wait_for(_collect(adapter), 5)] == ["a"]


async def _collect(adapter: ConsoleAdapter) -> list:
    return [event async for event in adapter.listen()]


# -- a real process reading stdin that is not a terminal -------------------------------------------

CHILD = textwrap.dedent("""\
    import asyncio, json
    from adapters.base import Identity
    from adapters.console import ConsoleAdapter

    async def main():
        adapter = ConsoleAdapter(banner="banner line")
        idle_calls = 0
        async def wait_idle():
            nonlocal idle_calls
            idle_calls += 1
        adapter.wait_idle = wait_idle
        await adapter.connect()
        assert not adapter.interactive
        async for event in adapter.listen():
            print("EVENT " + json.dumps([event.kind, event.text]), flush=True)
            if event.kind == "message":
                await adapter.post(adapter.channel, Identity(name="Priya Nair"), "re: " + event.text)
        await adapter.disconnect()
        print(f"END idle={idle_calls}", flush=True)

    asyncio.run(main())
""")

STDIN_SCRIPT = "hello there\n# a comment\n\n/troupe persona add Priya\n/help\nbye\n"


def _run_child(stdin: int | io.BufferedReader | None = None, data: str | None = None) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], input=data, stdin=stdin, capture_output=True, text=True,
        cwd=ROOT, timeout=30, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def _assert_transcript(lines: list[str]) -> None:
    assert lines[0] == "banner line"
    events = [json.loads(line[6:]) for line in lines if line.startswith("EVENT ")]
    assert events == [
        ["message", "hello there"],
        ["command", "persona add Priya"],
        ["command", "help"],
        ["message", "bye"],
    ]
    body = [line for line in lines if not line.startswith("EVENT ")]
    assert body[1] == "> hello there"
    assert re.fullmatch(r"\d\d:\d\d Priya Nair: re: hello there", body[2])
    assert body[3:5] == ["> /troupe persona add Priya", "> /help"]
    assert body[-1] == "END idle=5"


def test_piped_stdin_is_read_line_by_line_in_a_real_process() -> None:
    _assert_transcript(_run_child(data=STDIN_SCRIPT))


def test_stdin_redirected_from_a_file_in_a_real_process(tmp_path: Path) -> None:
    path = tmp_path / "input.txt"
    path.write_text(STDIN_SCRIPT, encoding="utf-8")
    with path.open("rb") as stdin:
        _assert_transcript(_run_child(stdin))


def test_empty_stdin_ends_at_once_in_a_real_process() -> None:
    assert _run_child(subprocess.DEVNULL) == ["banner line", "END idle=1"]


def test_piped_lines_are_handled_as_they_arrive_in_a_real_process() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, cwd=ROOT, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        assert child.stdout.readline() == "banner line\n"
        child.stdin.write("first\n")
        child.stdin.flush()
        # Answered while stdin is still open: the reader does not wait for the end of input.
        assert child.stdout.readline() == "> first\n"
        assert child.stdout.readline() == 'EVENT ["message", "first"]\n'
        assert child.stdout.readline().endswith("Priya Nair: re: first\n")
        child.stdin.write("/quit\n")
        child.stdin.close()
        assert child.stdout.read().splitlines() == ["> /quit", "END idle=3"]
        assert child.wait(timeout=30) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


async def test_the_prompt_keeps_reading_while_the_consumer_is_busy(pipe_input: PipeInput) -> None:
    adapter = prompt_adapter(pipe_input, plain_console())
    await adapter.connect()
    session = adapter._session
    assert session is not None
    seen: list[str] = []
    typed_meanwhile = asyncio.Event()

    async def consume() -> None:
        async for event in adapter.listen():
            seen.append(event.text)
            if event.text == "first":
                pipe_input.send_text("second\r")
                # Handled inline, slowly: the prompt must still take the line typed meanwhile.
                while session.history.get_strings()[-1:] != ["second"]:
                    await asyncio.sleep(0.01)
                typed_meanwhile.set()

    consumer = asyncio.create_task(consume())
    pipe_input.send_text("first\r")
    await asyncio.wait_for(typed_meanwhile.wait(), 5)
    pipe_input.send_text("/quit\r")
    await asyncio.wait_for(consumer, 5)
    assert seen == ["first", "second"]
    assert session.history.get_strings() == ["first", "second", "/quit"]


async def test_the_journal_lets_a_restarted_console_find_posts_and_typed_lines(tmp_path: Path) -> None:
    from datetime import datetime, timedelta

    since = datetime.now(UTC) - timedelta(seconds=1)
    stdin = io.StringIO("first line\n/status\nsecond line\n")
    before = ConsoleAdapter(console=plain_console(), stdin=stdin, journal_dir=tmp_path)
    events = [e async for e in before.listen()]
    shown = await before.post(before.channel, PRIYA, "I'd ship it.")
    again = await before.post(before.channel, PRIYA, "I'd ship it.")  # the same words, a second message
    await before.disconnect()

    after = ConsoleAdapter(console=plain_console(), journal_dir=tmp_path)  # the process was restarted
    assert await after.find_post(after.channel, PRIYA, "I'd ship it.", None, since) == shown
    assert await after.find_post(after.channel, PRIYA, "I'd ship it.", None, since, {shown}) == again
    assert await after.find_post(after.channel, PRIYA, "I'd ship it.", None, since, {shown, again}) is None
    assert await after.find_post(after.channel, Identity(name="Omar"), "I'd ship it.", None, since) is None
    assert await after.find_post(after.channel, PRIYA, "Something else", None, since) is None
    first = events[0]
    missed = await after.catch_up(after.channel, first.message_id)
    assert [m.text for m in missed] == ["second line"]  # commands are not replayed
    assert missed[0].message_id > first.message_id
