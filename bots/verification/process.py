"""The offline checks in a process of their own, so their CPU leaves the bot's event loop.

Verifying a post is half a millisecond of pattern matching; at hundreds of posts a second that is a
core's worth of work the event loop would otherwise do between model calls. ``VerificationProcess``
runs the checks in a child process (``python -m bots.verification.process``) and talks to it over
its stdin and stdout: length-prefixed pickled batches, every request waiting at one moment sent in
one write. A policy and a persona spec cross once; later requests name them by number.

The checks and their order are the bot's own (``build_verifier(policy, offline_only=True)``); checks
that call a model stay in the bot, which resumes the process's verdict through them. Failures stay
fail-closed without holding up the channel: a request the process does not answer within its checks'
timeouts (plus ``grace_s``) is held and the process replaced; requests a crash cut off are sent again
to its replacement, and held if that one dies on them too. A process that cannot be started at all
is given up after ``START_ATTEMPTS`` and the bot checks in its own process (``Unavailable``).

The process costs half a CPU-second to start (it imports and compiles the checks), so ``auto`` starts
it only once the bot checks ``AUTO_RATE`` messages a second; until it is ready, messages are checked
in the bot's process as before. ``on`` starts it with the bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import pickle
import signal
import struct
import sys
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bots.verification.base import Verdict, VerdictAction, VerificationContext, Verifier
from bots.verification.pipeline import VerificationPipeline

__all__ = ["AUTO_RATE", "ProcessVerifier", "Unavailable", "VerificationProcess", "wanted"]

log = logging.getLogger(__name__)

_HEADER = struct.Struct("!I")
#: Seconds a new process may take to import the checks and say it is ready.
START_TIMEOUT_S = 60.0
#: Starts in a row that may fail before the process is given up.
START_ATTEMPTS = 3
#: Seconds past its checks' timeouts a request may wait for its answer.
GRACE_S = 5.0
#: The folder ``bots`` is in: the process imports the bot's own checks, installed or not.
_ROOT = str(Path(__file__).resolve().parents[2])
#: Messages a second at which ``auto`` starts the process: below it, checking them here costs the
#: event loop under 3% of a core, less than the process's own start (half a CPU-second).
AUTO_RATE = 50
#: Persona specs the process keeps (the least recently used are forgotten on both sides).
SPECS_KEPT = 1024
#: Spec objects whose content key the bot keeps: a persona's spec is one object for its life, so
#: its key is worked out once, not at every message.
SPEC_OBJECTS_KEPT = 4096


class Unavailable(RuntimeError):
    """The verification process cannot be started; the caller checks in its own process."""


def wanted(setting: str, cores: int | None = None) -> bool:
    """Whether to verify in a process of its own: ``on``, ``off``, or ``auto`` (when a second core can run it)."""
    if setting in ("on", "off"):
        return setting == "on"
    return (cores if cores is not None else _usable_cores()) >= 2


def _usable_cores() -> int:
    """The cores this process may run on (its affinity, where the system tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@dataclass
class _Request:
    text: str
    policy: str
    names: tuple[str, ...]
    context: dict[str, Any]
    spec: dict[str, Any]
    deadline_s: float
    future: asyncio.Future[Verdict]
    #: Holds the request once ``deadline_s`` has passed.
    timer: asyncio.TimerHandle = field(repr=False)
    #: Processes this request was cut off in so far.
    crashes: int = 0


class VerificationProcess:
    """The child process and the requests in flight to it. ``command``: how to start it."""

    def __init__(self, *, grace_s: float = GRACE_S, command: Sequence[str] | None = None,
                 start_at_rate: float | None = None, start_timeout_s: float = START_TIMEOUT_S,
                 specs_kept: int = SPECS_KEPT) -> None:
        self.grace_s = grace_s
        self.start_timeout_s = start_timeout_s
        self.specs_kept = specs_kept
        self.command = list(command or [sys.executable, "-m", "bots.verification.process"])
        #: ``use`` starts the process once this many messages came within a second; None: only ``start`` does.
        self.start_at_rate = start_at_rate
        #: Processes started so far (a replacement after a crash or a timeout counts).
        self.starts = 0
        #: Messages the process has checked.
        self.checked = 0
        self._recent: deque[float] = deque()
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._starting: asyncio.Future[None] | None = None
        self._failed_starts = 0
        self._closed = False
        #: Numbers for requests and persona specs.
        self._numbers = itertools.count()
        self._pending: dict[int, _Request] = {}
        self._queue: list[int] = []
        self._flush: asyncio.Handle | None = None
        #: What the running process knows: policies and specs by number (specs newest last).
        self._policies: dict[str, int] = {}
        self._specs: OrderedDict[str, int] = OrderedDict()  # by content key, least recently used first
        #: By the id of a spec object: the object (kept, so the id stays its own) and its content key.
        self._spec_keys: OrderedDict[int, tuple[dict[str, Any], str]] = OrderedDict()
        self._forget: list[int] = []

    @property
    def pid(self) -> int | None:
        """The running process's id, or None."""
        return self._process.pid if self._process is not None and self._process.returncode is None else None

    @property
    def running(self) -> bool:
        """Started and ready for messages."""
        return self._starting is None and self.pid is not None

    def use(self) -> bool:
        """Whether a message should go to the process: once it runs. Until then the caller checks it
        itself, and the message counts towards ``start_at_rate``."""
        if self.running:
            return True
        if self.start_at_rate is None or self._starting is not None:
            return False
        now = time.monotonic()
        recent = self._recent
        recent.append(now)
        while recent[0] < now - 1.0:
            recent.popleft()
        if len(recent) >= self.start_at_rate:
            recent.clear()
            self._restart()
        return False

    async def verify(self, policy_json: str, names: Sequence[str], text: str, context: VerificationContext,
                     timeout_s: float) -> Verdict:
        """The verdict of the checks ``names`` (built from ``policy_json``) on ``text``. Raises
        ``Unavailable`` when no process can be started."""
        await self._ensure_started()
        loop = asyncio.get_running_loop()
        rid = next(self._numbers)
        deadline_s = timeout_s + self.grace_s
        request = _Request(text=text, policy=policy_json, names=tuple(names),
                           context=context.model_dump(exclude={"persona_spec"}), spec=context.persona_spec,
                           deadline_s=deadline_s, future=loop.create_future(),
                           timer=loop.call_later(deadline_s, self._expired, rid))
        self._pending[rid] = request
        self._send(rid)
        return await request.future

    async def start(self) -> None:
        """Start the process now rather than at the first message (which would wait for it)."""
        with contextlib.suppress(Unavailable):
            await self._ensure_started()

    async def aclose(self) -> None:
        """Stop the process (it exits when its input closes); requests in flight are held."""
        self._closed = True
        starting = self._starting
        if starting is not None:
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
        for rid in list(self._pending):
            self._hold(rid, "the verification process was stopped")
        await self._stop_process()

    # -- the process --------------------------------------------------------------------------

    async def _ensure_started(self) -> None:
        while self.pid is None:
            if self._closed:
                raise Unavailable("the verification process was stopped")
            if self._failed_starts >= START_ATTEMPTS:
                raise Unavailable(f"the verification process failed to start {START_ATTEMPTS} times in a row")
            self._restart()
            if self._starting is not None:
                await asyncio.shield(self._starting)

    def _restart(self) -> None:
        """Start a process unless one is starting (or none can be); it takes over the requests waiting.

        No request waits once the process is given up: a failed start gives them back to the caller."""
        if self._starting is not None or self._closed or self._failed_starts >= START_ATTEMPTS:
            return
        self._starting = asyncio.ensure_future(self._start())

    async def _start(self) -> None:
        try:
            await self._stop_process()
            self._policies.clear()
            self._specs.clear()
            self._forget.clear()
            self.starts += 1
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [_ROOT, os.environ.get("PYTHONPATH")]))}
            try:
                process = await asyncio.create_subprocess_exec(
                    *self.command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env
                )
                self._process = process
                assert process.stdout is not None
                async with asyncio.timeout(self.start_timeout_s):
                    ready = await _read_frame(process.stdout)
                if ready != "ready":
                    raise ValueError(f"it said {ready!r} instead of ready")
            except (Exception, TimeoutError) as error:
                self._failed_starts += 1
                log.warning("the verification process did not start (%s: %s)", type(error).__name__, error)
                await self._stop_process()
                self._fail_all(f"the verification process did not start: {error}")
                return
            self._failed_starts = 0
            self._reader = asyncio.ensure_future(self._read(process))
            for rid in sorted(self._pending):  # waiting for it, or cut off by the one before
                self._send(rid)
        finally:
            self._starting = None

    async def _stop_process(self) -> None:
        process, self._process = self._process, None
        reader, self._reader = self._reader, None
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        if reader is None:  # still starting (importing the checks): nothing to finish
            _kill(process)
        try:
            async with asyncio.timeout(2.0):
                await process.wait()
        except TimeoutError:
            _kill(process)
            await process.wait()

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        try:
            while True:
                for rid, ok, answer in await _read_frame(process.stdout):
                    if rid not in self._pending:
                        continue  # held meanwhile: it timed out
                    if ok:
                        self.checked += 1
                        self._answer(rid, Verdict.model_validate(answer))
                    else:
                        self._fail(rid, Unavailable(f"the verification process could not check it: {answer}"))
        except asyncio.CancelledError:
            raise
        except Exception as error:  # its output ended: it died, or was killed for hanging
            if self._process is process:
                await self._lost(f"{type(error).__name__}: {error}", process)

    async def _lost(self, why: str, process: asyncio.subprocess.Process) -> None:
        """The process died: what it was checking goes to a new one, once."""
        _kill(process)
        code = await process.wait()
        self._reader = None  # this task, which ends here
        self._process = None
        if self._closed:
            return
        log.warning("the verification process stopped (exit code %s, %s)", code, why)
        for rid, request in list(self._pending.items()):
            request.crashes += 1
            if request.crashes >= 2:
                self._hold(rid, f"the verification process stopped twice while checking it (exit code {code})")
        self._restart()  # it was wanted: its replacement takes what it was checking

    # -- requests -----------------------------------------------------------------------------

    def _send(self, rid: int) -> None:
        if self.pid is None:
            self._restart()  # which sends it once started
            return
        self._queue.append(rid)
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_soon(self._write)

    def _write(self) -> None:
        self._flush = None
        queue, self._queue = self._queue, []
        process = self._process
        if process is None or process.stdin is None or process.stdin.is_closing():
            return  # its reader restarts it and sends them again
        batch = []
        for rid in queue:
            request = self._pending.get(rid)
            if request is not None:  # (not held meanwhile)
                batch.append(self._request(rid, request))
        body = pickle.dumps((self._forget, batch))
        self._forget = []
        process.stdin.write(_HEADER.pack(len(body)) + body)

    def _request(self, rid: int, request: _Request) -> tuple:
        """A request as the process reads it, the policy and spec named by number once it knows them."""
        policy_id = self._policies.get(request.policy)
        policy = None
        if policy_id is None:
            policy_id = self._policies[request.policy] = len(self._policies)
            policy = request.policy
        spec_id, spec = self._spec(request.spec)
        return (rid, policy_id, policy, request.names, request.text, request.context, spec_id, spec)

    def _spec(self, spec: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        """The number the process knows ``spec`` by, and the spec itself when it does not know it yet.
        Specs are found by content (the same persona in many channels crosses once), through the
        spec object's identity (a spec is never changed in place; a persona's new spec is a new dict)."""
        key = self._spec_key(spec)
        number = self._specs.get(key)
        if number is not None:
            self._specs.move_to_end(key)  # the least recently used is forgotten first
            return number, None
        number = self._specs[key] = next(self._numbers)
        if len(self._specs) > self.specs_kept:
            self._forget.append(self._specs.popitem(last=False)[1])
        return number, spec

    def _spec_key(self, spec: dict[str, Any]) -> str:
        if not spec:
            return "{}"
        known = self._spec_keys.get(id(spec))
        if known is not None and known[0] is spec:
            self._spec_keys.move_to_end(id(spec))
            return known[1]
        key = json.dumps(spec, sort_keys=True, ensure_ascii=False, default=str)
        self._spec_keys[id(spec)] = (spec, key)
        if len(self._spec_keys) > SPEC_OBJECTS_KEPT:
            self._spec_keys.popitem(last=False)
        return key

    def _expired(self, rid: int) -> None:
        request = self._pending.get(rid)
        if request is None:
            return
        self._hold(rid, f"the verification process did not answer within {request.deadline_s:g} s")
        if self._process is not None and self._reader is not None:
            _kill(self._process)  # a process stuck on one message is stuck for all: replace it

    def _hold(self, rid: int, why: str) -> None:
        log.warning("a message is held: %s", why)
        text = self._pending[rid].text
        self._answer(rid, Verdict(action=VerdictAction.HOLD, text=text, reasons=[f"verification: {why}"]))

    def _answer(self, rid: int, verdict: Verdict) -> None:
        if (future := self._settle(rid)) is not None:
            future.set_result(verdict)

    def _fail(self, rid: int, error: Exception) -> None:
        if (future := self._settle(rid)) is not None:
            future.set_exception(error)

    def _fail_all(self, why: str) -> None:
        for rid in list(self._pending):
            self._fail(rid, Unavailable(why))

    def _settle(self, rid: int) -> asyncio.Future[Verdict] | None:
        """Request ``rid`` off the books; its future, unless its caller gave up on it."""
        request = self._pending.pop(rid)
        request.timer.cancel()
        return None if request.future.done() else request.future


class ProcessVerifier(Verifier):
    """A policy's pipeline with its offline checks run in the verification process and the rest
    (the checks that call a model) here. Without a process, the whole pipeline runs here."""

    def __init__(self, pipeline: VerificationPipeline, process: VerificationProcess, policy_json: str) -> None:
        self.pipeline = pipeline
        self._process = process
        self._policy = policy_json
        lead = pipeline.offline_lead
        self._names = tuple(check.name for check in pipeline.checks[:lead])
        self._timeout_s = sum(pipeline.timeout_for(check) for check in pipeline.checks[:lead])
        self._rest = pipeline.after(lead)

    async def verify(self, text: str, context: VerificationContext) -> Verdict:
        if not self._names or not self._process.use():
            return await self.pipeline.verify(text, context)
        try:
            verdict = await self._process.verify(self._policy, self._names, text, context, self._timeout_s)
        except Unavailable as error:
            log.debug("verifying here: %s", error)
            return await self.pipeline.verify(text, context)
        return await self._rest.resume(verdict, context)


def _kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:  # (once it is known, the process is gone and killing it raises)
        process.kill()


# -- the child process ----------------------------------------------------------------------------


async def _read_frame(stream: asyncio.StreamReader) -> Any:
    head = await stream.readexactly(_HEADER.size)
    return pickle.loads(await stream.readexactly(_HEADER.unpack(head)[0]))


def _write_frame(out: Any, value: Any) -> None:
    body = pickle.dumps(value)
    out.write(_HEADER.pack(len(body)) + body)
    out.flush()


def _read_exactly(stream: Any, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def serve(stdin: Any, stdout: Any) -> None:
    """The child's loop: batches in, verdicts out, until its input closes."""
    from bots.verification.factory import build_verifier
    from config.verification import VerificationPolicy

    pipelines: dict[int, VerificationPipeline] = {}
    specs: dict[int, dict[str, Any]] = {}
    loop = asyncio.new_event_loop()
    _write_frame(stdout, "ready")

    async def answer(batch: list[tuple]) -> list[tuple[int, bool, Any]]:
        answers: list[tuple[int, bool, Any]] = []
        for rid, policy_id, policy, names, text, context, spec_id, spec in batch:
            try:
                if policy is not None:
                    pipelines[policy_id] = build_verifier(VerificationPolicy.model_validate_json(policy), offline_only=True)
                if spec is not None:
                    specs[spec_id] = spec
                pipeline = pipelines[policy_id]
                if tuple(check.name for check in pipeline.checks) != tuple(names):
                    raise ValueError(f"its checks are {pipeline.names}, not {list(names)}")
                verdict = await pipeline.verify(text, VerificationContext(**context, persona_spec=specs[spec_id]))
                answers.append((rid, True, verdict.model_dump(mode="json")))
            except Exception as error:  # noqa: BLE001 - told to the bot, which verifies it itself
                answers.append((rid, False, f"{type(error).__name__}: {error}"))
        return answers

    try:
        while True:
            head = _read_exactly(stdin, _HEADER.size)
            if head is None:
                return
            body = _read_exactly(stdin, _HEADER.unpack(head)[0])
            if body is None:
                return
            forget, batch = pickle.loads(body)
            for spec_id in forget:
                specs.pop(spec_id, None)
            _write_frame(stdout, loop.run_until_complete(answer(batch)))
    finally:
        loop.close()


if __name__ == "__main__":
    # Ctrl-C in a terminal reaches the whole process group; the bot stops this process itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="verification process: %(levelname)s %(name)s: %(message)s")
    serve(sys.stdin.buffer, sys.stdout.buffer)
