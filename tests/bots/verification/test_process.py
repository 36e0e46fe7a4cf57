"""The offline checks in a process of their own: the same verdicts as in the bot's process, and a
process that dies, hangs or never starts costs no message its check."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import pickle
import re
import signal
import sys

import pytest

from bots.verification.base import Verdict, VerdictAction, VerificationContext
from bots.verification.factory import build_verifier
from bots.verification.process import _HEADER, ProcessVerifier, Unavailable, VerificationProcess, serve, wanted
from config.verification import TEAM_DEFAULT, VerificationPolicy
from simulation.llm.openai_model import OpenAIModel
from simulation.persona import find_bundled_persona
from tests.bench import verification as bench
from tests.fakes.openai_server import FakeOpenAIServer
from tests.support.testbot import fake_model_settings, start_bot
from tests.support.turns import TurnRule
from tests.support.waiting import until

PRIYA = find_bundled_persona("Priya Nair").to_tinytroupe_dict()
CONTEXT = VerificationContext(platform="slack", persona="Priya Nair", persona_spec=PRIYA, world_id="w1")
EMAIL = "Send it to priya.nair@example.com please."


def recital(spec: dict) -> str:
    """A persona reciting its own spec: blocked by the leakage check, which knows the spec."""
    return " ".join([spec["occupation"]["description"], *spec["personality"]["traits"]])


@pytest.fixture
async def process():
    started = VerificationProcess(grace_s=1.0)
    await started.start()
    yield started
    await started.aclose()


def verifier(process: VerificationProcess, policy: VerificationPolicy = TEAM_DEFAULT, model=None) -> ProcessVerifier:
    return ProcessVerifier(build_verifier(policy, model=model), process, policy.model_dump_json())


def same(a, b) -> bool:
    return (a.action, a.text, a.reasons, [c["check"] for c in a.checks]) == (b.action, b.text, b.reasons, [c["check"] for c in b.checks])



async def test_the_process_gives_the_verdicts_of_the_bots_own_checks(process):
    """The labelled corpus, all at once, and a persona reciting its own spec (which the process
    only knows from the spec sent with the first request)."""
    local = build_verifier(TEAM_DEFAULT)
    remote = verifier(process)
    texts = [row.text for row in bench.load(bench.CORPUS)] + [recital(PRIYA), EMAIL]

    theirs = await asyncio.gather(*(remote.verify(text, CONTEXT) for text in texts))
    ours = [await local.verify(text, CONTEXT) for text in texts]

    differ = [(text, a, b) for text, a, b in zip(texts, theirs, ours, strict=True) if not same(a, b)]
    assert not differ, differ[:3]
    assert {v.action for v in theirs} == {VerdictAction.PASS, VerdictAction.REWRITE, VerdictAction.HOLD, VerdictAction.BLOCK}
    assert theirs[-2].action is VerdictAction.BLOCK and "persona spec" in " ".join(theirs[-2].reasons)
    assert "priya.nair@example.com" not in theirs[-1].text
    assert process.pid is not None and process.pid != os.getpid() and process.starts == 1
    assert process.checked == len(texts)


async def test_channels_with_different_policies_share_the_process_each_under_its_own(process):
    redacting, blocking = verifier(process), verifier(process, TEAM_DEFAULT.merged({"pii_action": "block"}))
    verdicts = await asyncio.gather(*(v.verify(EMAIL, CONTEXT) for v in [redacting, blocking] * 3))
    assert [v.action for v in verdicts] == [VerdictAction.REWRITE, VerdictAction.BLOCK] * 3
    assert process.checked == 6


async def test_checks_the_process_cannot_build_as_asked_are_left_to_the_bot(process):
    """The process builds the checks from the policy; if they are not the ones the bot expects (a
    process of other code), it says so and the bot checks the message itself."""
    with pytest.raises(Unavailable, match="could not check it: ValueError: its checks are"):
        await process.verify(TEAM_DEFAULT.model_dump_json(), ["pii"], EMAIL, CONTEXT, 1.0)
    assert (await verifier(process).verify(EMAIL, CONTEXT)).action is VerdictAction.REWRITE and process.checked == 1


async def test_checks_that_call_a_model_run_in_the_bot_after_the_process(process, fake_openai):
    """With the judge on, the process runs the offline checks and the bot the judge, on the text as
    the offline checks left it; a post they already blocked never reaches the judge."""
    model = OpenAIModel.openai(model="gpt-4o-mini", api_key="sk-test", base_url=fake_openai.base_url, timeout_s=5)
    try:
        policy = TEAM_DEFAULT.merged({"judge": {"enabled": True}})
        remote = verifier(process, policy, model)
        fake_openai.script([json.dumps({"decision": "hold", "category": "other", "reason": "sounds off"})])

        held = await remote.verify(EMAIL, CONTEXT)
        assert held.action is VerdictAction.HOLD and any("sounds off" in r for r in held.reasons)
        assert [c["check"] for c in held.checks] == [*TEAM_DEFAULT.enabled_checks(), "judge"]
        asked = json.dumps(fake_openai.requests[0].body)
        assert "priya.nair@example.com" not in asked  # the judge read the redacted text

        blocked = await remote.verify("I will kill you tomorrow, I know where you live.", CONTEXT)
        assert blocked.action is VerdictAction.BLOCK and len(fake_openai.requests) == 1
    finally:
        await model.aclose()


async def test_a_killed_process_is_replaced_and_what_it_was_checking_is_checked_by_the_next(process, caplog):
    caplog.set_level(logging.WARNING)
    remote = verifier(process)
    first = process.pid
    os.kill(first, signal.SIGSTOP)  # it reads nothing more: the requests below are in flight when it dies
    checking = [asyncio.ensure_future(remote.verify(EMAIL, CONTEXT)) for _ in range(3)]
    await asyncio.sleep(0.2)
    assert not any(task.done() for task in checking)
    os.kill(first, signal.SIGKILL)

    verdicts = await asyncio.gather(*checking)
    assert all(v.action is VerdictAction.REWRITE and "priya.nair@example.com" not in v.text for v in verdicts)
    assert process.starts == 2 and process.pid not in (None, first) and process.checked == 3
    # (-9; a test runner that reaps children itself leaves asyncio only 255 to report)
    assert re.search(r"the verification process stopped \(exit code -?\d+, IncompleteReadError: ", caplog.text)


DIES_ON_ITS_FIRST_REQUEST = (
    "import os, sys\n"
    "from bots.verification.process import _write_frame\n"
    "_write_frame(sys.stdout.buffer, 'ready')\n"
    "sys.stdin.buffer.read(4)\n"
    "os._exit(3)\n"
)


async def test_a_message_two_processes_died_on_is_held_not_checked_in_the_bot(caplog):
    """A message that kills the process twice might kill the bot: it is held for a moderator."""
    process = VerificationProcess(command=[sys.executable, "-c", DIES_ON_ITS_FIRST_REQUEST])
    try:
        await process.start()
        verdict = await verifier(process).verify(EMAIL, CONTEXT)
    finally:
        await process.aclose()

    assert verdict.action is VerdictAction.HOLD and verdict.text == EMAIL
    assert verdict.reasons[0].startswith("verification: the verification process stopped twice while checking it")
    assert process.starts == 2
    assert "a message is held" in caplog.text


async def test_a_process_that_does_not_answer_in_time_has_its_message_held_and_is_replaced():
    process = VerificationProcess(grace_s=0.3)
    try:
        remote = verifier(process)
        await process.start()
        hung = process.pid
        os.kill(hung, signal.SIGSTOP)

        verdict = await remote.verify(EMAIL, CONTEXT)
        assert verdict.action is VerdictAction.HOLD
        assert verdict.reasons[0].startswith("verification: the verification process did not answer within ")

        await until(lambda: process.running and process.pid != hung)
        after = await remote.verify(EMAIL, CONTEXT)
        assert after.action is VerdictAction.REWRITE and process.checked == 1 and process.starts == 2
    finally:
        await process.aclose()


async def test_a_process_that_cannot_start_leaves_the_checks_to_the_bot(caplog):
    caplog.set_level(logging.WARNING)
    process = VerificationProcess(command=[sys.executable, "-c", "raise SystemExit(2)"], start_at_rate=1)
    try:
        await process.start()
        remote = verifier(process)
        verdicts = [await remote.verify(EMAIL, CONTEXT) for _ in range(5)]
        await asyncio.sleep(0.5)  # time for a fourth start, were one tried
    finally:
        await process.aclose()

    assert all(v.action is VerdictAction.REWRITE and "priya.nair@example.com" not in v.text for v in verdicts)
    assert process.starts == 3 and process.checked == 0  # then given up, not tried for every message
    assert "the verification process did not start" in caplog.text


async def test_auto_starts_the_process_only_once_messages_come_fast_and_checks_here_meanwhile():
    process = VerificationProcess(start_at_rate=20)
    try:
        remote = verifier(process)
        for _ in range(5):  # a quiet channel: one message now and then
            assert (await remote.verify(EMAIL, CONTEXT)).action is VerdictAction.REWRITE
            await asyncio.sleep(0.25)
        assert process.starts == 0 and process.pid is None

        burst = await asyncio.gather(*(remote.verify(EMAIL, CONTEXT) for _ in range(30)))
        assert all(v.action is VerdictAction.REWRITE for v in burst) and process.checked == 0  # checked here meanwhile
        await until(lambda: process.running)
        after = await remote.verify(EMAIL, CONTEXT)
        assert after.action is VerdictAction.REWRITE and process.checked == 1 and process.starts == 1
    finally:
        await process.aclose()


def test_auto_verifies_in_a_process_of_its_own_only_with_a_second_core():
    assert not wanted("auto", cores=1) and wanted("auto", cores=2)
    assert wanted("on", cores=1) and not wanted("off", cores=8)
    assert wanted("auto") is (len(os.sched_getaffinity(0)) >= 2)  # the cores this bot may use


async def test_stopping_holds_what_the_process_was_checking_and_starts_no_other(process):
    remote = verifier(process)
    os.kill(process.pid, signal.SIGSTOP)
    checking = asyncio.ensure_future(remote.verify(EMAIL, CONTEXT))
    await asyncio.sleep(0.2)
    await process.aclose()

    verdict = await checking
    assert verdict.action is VerdictAction.HOLD and verdict.reasons == ["verification: the verification process was stopped"]
    after = await remote.verify(EMAIL, CONTEXT)  # a reply still being checked as the bot stops
    assert after.action is VerdictAction.REWRITE and process.pid is None and process.starts == 1 and process.checked == 0
    with pytest.raises(Unavailable, match="^the verification process was stopped$"):
        await process.verify(TEAM_DEFAULT.model_dump_json(), ["pii"], EMAIL, CONTEXT, 1.0)
    assert process.starts == 1


async def test_the_bot_checks_posts_in_its_verification_process_and_stops_it_with_itself(tmp_path):
    async with FakeOpenAIServer() as server:
        server.responder = TurnRule()
        bot = await start_bot(fake_model_settings(tmp_path, server, default_exchanges=0, verification_process="on"))
        try:
            await bot.command("start Launch review")
            await bot.command("persona add Priya Nair")
            bot.adapter.push_message(f"Mail me the notes: {EMAIL}")
            post = await bot.adapter.pop("post", timeout=20)
            assert post.identity == "Priya Nair" and "[email" in post.text and "priya.nair@example.com" not in post.text
            child = bot.app.verification_process.pid
            assert child is not None and child != os.getpid()
        finally:
            await bot.app.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)


# -- the process's side of the pipe, run here on in-memory streams ------------------------------

POLICY = TEAM_DEFAULT.model_dump_json()
OFFLINE = tuple(check.name for check in build_verifier(TEAM_DEFAULT, offline_only=True).checks)
ASKED = CONTEXT.model_dump(exclude={"persona_spec"})


def frame(value) -> bytes:
    body = pickle.dumps(value)
    return _HEADER.pack(len(body)) + body


def frames(data: bytes) -> list:
    found, at = [], 0
    while at < len(data):
        (size,) = _HEADER.unpack_from(data, at)
        at += _HEADER.size
        found.append(pickle.loads(data[at:at + size]))
        at += size
    return found


class Trickle:
    """A pipe that hands over a few bytes a read, as a real one may."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, size: int) -> bytes:
        return self._data.read(min(size, 3))


def served(*batches: tuple[list, list], tail: bytes = b"") -> list:
    out = io.BytesIO()
    serve(Trickle(b"".join(frame(batch) for batch in batches) + tail), out)
    return frames(out.getvalue())


PROMPT = "You are Priya Nair. Speak briefly about launch planning and keep answers under three sentences, citing the Zephyr checklist."
OWN_WORDS = "Speak briefly about launch planning and keep answers under three sentences, citing the Zephyr checklist."


def test_the_process_answers_each_batch_knowing_a_policy_and_a_spec_once_sent():
    prompted = {**ASKED, "system_prompt": PROMPT}
    first = [(1, 0, POLICY, OFFLINE, EMAIL, ASKED, 7, PRIYA), (2, 0, None, OFFLINE, recital(PRIYA), ASKED, 7, None)]
    second = [(3, 0, None, OFFLINE, "Sounds good, ship it on Friday.", ASKED, 7, None),
              (4, 0, None, OFFLINE, OWN_WORDS, prompted, 7, None)]  # the context reaches the checks
    ready, answers, later = served(([], first), ([], second))

    assert ready == "ready"
    assert [a[:2] for a in answers] == [(1, True), (2, True)] and [a[:2] for a in later] == [(3, True), (4, True)]
    redacted, recited, fine, leaked = (Verdict.model_validate(a[2]) for a in [*answers, *later])
    assert redacted.action is VerdictAction.REWRITE and "priya.nair@example.com" not in redacted.text
    assert recited.action is VerdictAction.BLOCK and "persona spec" in " ".join(recited.reasons)
    assert fine.action is VerdictAction.PASS and fine.text == "Sounds good, ship it on Friday."
    assert [c["check"] for c in fine.checks] == list(OFFLINE)
    assert leaked.action is VerdictAction.HOLD and "repeats parts of its prompt" in leaked.reasons[0]
    assert b"bots." not in pickle.dumps(answers + later)  # plain data: no classes of the bot's cross back


def test_the_process_leaves_the_checks_that_call_a_model_to_the_bot():
    judged = TEAM_DEFAULT.merged({"judge": {"enabled": True}}).model_dump_json()
    _, answers = served(([], [(1, 0, judged, OFFLINE, EMAIL, ASKED, 7, PRIYA)]))
    assert answers[0][:2] == (1, True)
    assert [c["check"] for c in Verdict.model_validate(answers[0][2]).checks] == list(OFFLINE)


def test_what_the_process_cannot_check_is_told_back_one_request_at_a_time():
    first = [(1, 0, POLICY, OFFLINE, EMAIL, ASKED, 7, PRIYA)]
    second = [
        (2, 0, None, OFFLINE, EMAIL, ASKED, 7, None),  # its spec was forgotten just now
        (3, 0, None, ("pii",), EMAIL, ASKED, 8, PRIYA),  # other checks than the policy's
        (4, 1, "{not a policy", OFFLINE, EMAIL, ASKED, 8, None),
        (5, 0, None, OFFLINE, EMAIL, ASKED, 8, None),  # the spec request 3 brought is known
    ]
    _, _, answers = served(([], first), ([7, 99], second))  # 99: never sent, nothing to forget

    assert [(rid, ok) for rid, ok, _ in answers] == [(2, False), (3, False), (4, False), (5, True)]
    assert answers[0][2] == "KeyError: 7"
    assert answers[1][2].startswith(f"ValueError: its checks are {list(OFFLINE)}, not ['pii']")
    assert answers[2][2].startswith("ValidationError: ")
    assert Verdict.model_validate(answers[3][2]).action is VerdictAction.REWRITE


def test_the_process_ends_quietly_when_its_input_ends_mid_message():
    whole = ([], [(1, 0, POLICY, OFFLINE, EMAIL, ASKED, 7, PRIYA)])
    assert [type(f) for f in served(whole, tail=frame(whole)[:2])] == [str, list]  # cut in a length
    assert [type(f) for f in served(whole, tail=frame(whole)[:-1])] == [str, list]  # cut in a body
    assert served() == ["ready"]


# -- the bot's side ------------------------------------------------------------------------------

RECORDING = (
    "import sys\n"
    "from bots.verification.process import serve\n"
    "class Copy:\n"
    "    def __init__(self, stream, to): self.stream, self.to = stream, to\n"
    "    def read(self, size):\n"
    "        data = self.stream.read(size); self.to.write(data); self.to.flush(); return data\n"
    "serve(Copy(sys.stdin.buffer, open(sys.argv[1], 'wb')), sys.stdout.buffer)\n"
)


async def test_a_policy_and_a_spec_cross_once_and_the_least_recently_used_spec_is_forgotten(tmp_path):
    a, b, c = (find_bundled_persona(name).to_tinytroupe_dict() for name in ("Priya Nair", "Diego Hernandez", "Chloe Bennett"))
    record = tmp_path / "stdin"
    process = VerificationProcess(command=[sys.executable, "-c", RECORDING, str(record)], specs_kept=2)
    remote = verifier(process)
    try:
        await process.start()
        verdicts = [await remote.verify(recital(spec), CONTEXT.model_copy(update={"persona_spec": spec}))
                    for spec in (a, a, b, a, c, a, b)]
    finally:
        await process.aclose()

    assert all(v.action is VerdictAction.BLOCK for v in verdicts) and process.checked == 7
    sent = [(forget, *request) for forget, batch in frames(record.read_bytes()) for request in batch]
    assert [policy is not None for _, _, _, policy, *_ in sent] == [True] + [False] * 6
    assert [spec is not None for *_, spec in sent] == [True, False, True, False, True, False, True]
    numbers = [spec_id for *_, spec_id, _ in sent]
    assert numbers[0] == numbers[1] == numbers[3] == numbers[5]
    assert len({numbers[0], numbers[2], numbers[4], numbers[6]}) == 4
    assert [forget for forget, *_ in sent] == [[], [], [], [], [numbers[2]], [], [numbers[4]]]  # b, then c


async def test_the_same_persona_in_many_channels_crosses_once_and_a_changed_one_again(tmp_path):
    """Personas are found by content: 50 channels' copies of one persona cross once, however many
    specs are kept; a persona given a new spec (a new dict, never one changed in place) crosses again."""
    priya = find_bundled_persona("Priya Nair")
    copies = [priya.to_tinytroupe_dict() for _ in range(50)]
    renamed = priya.define("age", 52).to_tinytroupe_dict()
    record = tmp_path / "stdin"
    process = VerificationProcess(command=[sys.executable, "-c", RECORDING, str(record)], specs_kept=2)
    remote = verifier(process)
    try:
        await process.start()
        for spec in [*copies, renamed, copies[7], {}, {}]:
            await remote.verify(recital(spec or copies[0]), CONTEXT.model_copy(update={"persona_spec": spec}))
    finally:
        await process.aclose()

    sent = [request for _, batch in frames(record.read_bytes()) for request in batch]
    assert [i for i, (*_, spec) in enumerate(sent) if spec is not None] == [0, 50, 52]
    numbers = [spec_id for *_, spec_id, _ in sent]
    assert set(numbers[:50]) == {numbers[0]} and numbers[51] == numbers[0] and numbers[53] == numbers[52]
    assert len({numbers[0], numbers[50], numbers[52]}) == 3


async def test_requests_before_the_process_is_ready_wait_for_one_process():
    process = VerificationProcess()
    try:
        verdicts = await asyncio.gather(*(process.verify(POLICY, OFFLINE, EMAIL, CONTEXT, 5.0) for _ in range(10)))
    finally:
        await process.aclose()
    assert all(v.action is VerdictAction.REWRITE for v in verdicts) and process.starts == 1 and process.checked == 10


async def test_a_process_that_says_something_else_than_ready_is_not_used(caplog):
    caplog.set_level(logging.WARNING)
    says_hello = "import sys\nfrom bots.verification.process import _write_frame\n_write_frame(sys.stdout.buffer, 'hello')\n"
    process = VerificationProcess(command=[sys.executable, "-c", says_hello])
    try:
        with pytest.raises(Unavailable, match="failed to start 3 times in a row"):
            await process.verify(POLICY, OFFLINE, EMAIL, CONTEXT, 5.0)
        assert (await verifier(process).verify(EMAIL, CONTEXT)).action is VerdictAction.REWRITE
    finally:
        await process.aclose()
    assert process.starts == 3 and process.checked == 0
    assert "it said 'hello' instead of ready" in caplog.text


async def test_a_process_that_hangs_while_starting_is_killed_and_given_up(tmp_path):
    pids = tmp_path / "pids"
    hangs = "import os, sys, time\nopen(sys.argv[1], 'a').write(f'{os.getpid()}\\n')\ntime.sleep(60)\n"
    process = VerificationProcess(command=[sys.executable, "-c", hangs, str(pids)], start_timeout_s=0.5)
    try:
        await process.start()
        assert (await verifier(process).verify(EMAIL, CONTEXT)).action is VerdictAction.REWRITE  # checked here
    finally:
        await process.aclose()
    started = [int(pid) for pid in pids.read_text().split()]
    assert len(started) == process.starts == 3 and process.pid is None
    for pid in started:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def test_auto_starts_at_exactly_its_rate_of_messages_within_a_second():
    process = VerificationProcess(start_at_rate=10)
    try:
        remote = verifier(process)
        for _ in range(9):
            await remote.verify(EMAIL, CONTEXT)
        await asyncio.sleep(1.1)  # those nine are more than a second old now
        for _ in range(9):
            await remote.verify(EMAIL, CONTEXT)
        await asyncio.sleep(0.1)
        assert process.starts == 0
        await remote.verify(EMAIL, CONTEXT)
        await until(lambda: process.running)
        await remote.verify(EMAIL, CONTEXT)
        assert process.starts == 1 and process.checked == 1
    finally:
        await process.aclose()


def test_auto_counts_the_machines_cores_where_the_system_tells_no_affinity(monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity")  # as on macOS
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert wanted("auto")
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # unknown: one, and no process of its own
    assert not wanted("auto")


def test_auto_counts_the_cores_the_bot_may_run_on_not_the_machines():
    allowed = os.sched_getaffinity(0)
    if len(allowed) < 2:
        pytest.skip("needs two cores to take one away")
    try:
        os.sched_setaffinity(0, {min(allowed)})  # as a container limited to one CPU
        assert not wanted("auto")
    finally:
        os.sched_setaffinity(0, allowed)
    assert wanted("auto")


def serving(before: str = "", after: str = "") -> str:
    """A child's script: ``before``, then the verification process's own loop, then ``after``."""
    return (f"import os, sys, time\n{before}"
            "from bots.verification.process import serve\nserve(sys.stdin.buffer, sys.stdout.buffer)\n"
            f"{after}")


SLOW_START = serving("time.sleep(1.0)\n")


async def test_a_message_held_while_a_replacement_starts_leaves_the_replacement_alone():
    process = VerificationProcess(grace_s=0.0, command=[sys.executable, "-c", SLOW_START])
    try:
        await process.start()
        first = process.pid
        os.kill(first, signal.SIGSTOP)
        checking = asyncio.ensure_future(process.verify(POLICY, OFFLINE, EMAIL, CONTEXT, 0.5))
        await asyncio.sleep(0.1)
        os.kill(first, signal.SIGKILL)  # its replacement takes a second to start: past the message's 0.5 s

        verdict = await checking
        assert verdict.action is VerdictAction.HOLD and verdict.reasons == [
            "verification: the verification process did not answer within 0.5 s"]
        await until(lambda: process.running)
        after = await process.verify(POLICY, OFFLINE, EMAIL, CONTEXT, 5.0)
        assert after.action is VerdictAction.REWRITE
        assert process.starts == 2 and process.pid != first and process.checked == 1
    finally:
        await process.aclose()


STARTS_ONCE = serving("if os.path.exists(sys.argv[1]): raise SystemExit(2)\nopen(sys.argv[1], 'w').close()\n")


async def test_messages_cut_off_by_a_crash_go_back_to_the_bot_when_no_replacement_starts(tmp_path, caplog):
    """The process died, and its replacement cannot start (the bot's files changed on disk, say): the
    messages it was checking are checked in the bot, not held and not lost."""
    caplog.set_level(logging.WARNING)
    process = VerificationProcess(command=[sys.executable, "-c", STARTS_ONCE, str(tmp_path / "started")])
    try:
        await process.start()
        first = process.pid
        os.kill(first, signal.SIGSTOP)
        direct = asyncio.ensure_future(process.verify(POLICY, OFFLINE, EMAIL, CONTEXT, 5.0))
        through = asyncio.ensure_future(verifier(process).verify(EMAIL, CONTEXT))
        await asyncio.sleep(0.2)
        os.kill(first, signal.SIGKILL)

        with pytest.raises(Unavailable, match="^the verification process did not start: "):
            await direct
        verdict = await through
        assert verdict.action is VerdictAction.REWRITE and "priya.nair@example.com" not in verdict.text
        with pytest.raises(Unavailable, match="failed to start 3 times in a row"):  # two more tries, then given up
            await process.verify(POLICY, OFFLINE, EMAIL, CONTEXT, 5.0)
    finally:
        await process.aclose()
    assert process.starts == 4 and process.checked == 0 and "the verification process did not start" in caplog.text


async def test_a_message_its_caller_gave_up_on_is_answered_without_upsetting_the_process(process):
    os.kill(process.pid, signal.SIGSTOP)
    given_up = asyncio.ensure_future(process.verify(POLICY, OFFLINE, EMAIL, CONTEXT, 5.0))
    await asyncio.sleep(0.2)
    given_up.cancel()  # a turn cancelled, say: its answer still comes
    os.kill(process.pid, signal.SIGCONT)
    await until(lambda: process.checked == 1)

    verdict = await process.verify(POLICY, OFFLINE, EMAIL, CONTEXT, 5.0)
    assert verdict.action is VerdictAction.REWRITE and process.checked == 2 and process.starts == 1


async def test_the_process_runs_the_bots_own_code_on_the_python_path_it_was_given(tmp_path, monkeypatch):
    """With a PYTHONPATH holding a package also called ``bots`` and a module the process needs, it
    imports the bot's own ``bots`` and still finds the module (``-P``: not from the current folder,
    as when the bot was started elsewhere)."""
    theirs = tmp_path / "theirs"
    (theirs / "bots").mkdir(parents=True)
    (theirs / "bots" / "__init__.py").write_text("raise ImportError('not the bot\\'s own bots')\n")
    (theirs / "site_hooks.py").write_text("READY = 'ready'\n")
    monkeypatch.setenv("PYTHONPATH", str(theirs))
    process = VerificationProcess(command=[sys.executable, "-P", "-c", serving("import site_hooks\n")])
    try:
        verdict = await process.verify(POLICY, OFFLINE, EMAIL, CONTEXT, 5.0)
    finally:
        await process.aclose()
    assert verdict.action is VerdictAction.REWRITE and process.starts == 1 and process.checked == 1


async def test_stopping_lets_the_process_finish_and_exit_of_its_own_accord(tmp_path):
    marker = tmp_path / "finished"
    finishes = serving(after="open(sys.argv[1], 'w').write('done')\n")
    process = VerificationProcess(command=[sys.executable, "-c", finishes, str(marker)])
    await process.start()
    assert (await process.verify(POLICY, OFFLINE, EMAIL, CONTEXT, 5.0)).action is VerdictAction.REWRITE
    await process.aclose()
    assert marker.read_text() == "done"  # its input closed, it returned from serve: not killed
