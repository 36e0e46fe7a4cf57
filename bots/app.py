"""The application: adapters in, sessions and commands in the middle, the outbox out.

Events of one channel are handled one after another, in arrival order; channels run concurrently.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Awaitable
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from adapters.base import (
    Adapter,
    AdapterError,
    AdapterEvent,
    AdapterState,
    ChannelRef,
    CommandInvocation,
    IncomingMessage,
    UserRef,
    free_path,
)
from adapters.menu import quote_word
from bots.collector import QuietCollector
from bots.commands import MENU, prefixed
from bots.context import CommandServices
from bots.focus_groups import FocusGroups
from bots.forks import Branches
from bots.interviews import Interviews
from bots.logs import log_context
from bots.outbox import Outbox
from bots.ownership import INBOX_TOPIC, ChannelOwnership
from bots.permissions import ModeratorPolicy
from bots.rate_limits import CommandRateLimiter
from bots.registry import CommandRegistry
from bots.reply import Reply, with_command_prefix
from bots.services import Services
from bots.session_config import SessionConfig
from bots.session_manager import SessionManager
from bots.storage import StaleOwnerError, Storage, StorageError, StorageUnavailableError, WorldStatus
from bots.storage.open import storage_for
from bots.suggestions import PersonaSuggestions
from bots.verification import Verifier
from bots.verification.factory import build_verifier
from bots.verification.process import AUTO_RATE, ProcessVerifier, VerificationProcess, wanted
from config.settings import Settings
from config.verification import VerificationPolicy
from simulation.fairness import fair_turn
from simulation.llm.base import ModelWrapper
from simulation.llm.factory import ModelStack, build_model
from simulation.llm.limiter import ConcurrencyLimitedModel

log = logging.getLogger(__name__)

#: Waits between attempts to connect to a platform that failed for a moment; then start-up fails.
CONNECT_RETRY_DELAYS_S = (1.0, 2.0, 4.0, 8.0)
#: Channels whose history is read at once when catching up after a restart.
CATCH_UP_CONCURRENCY = 8

#: Seconds between tries to read a channel's missed messages after a restart.
CATCH_UP_RETRY_DELAYS = (0.5, 1, 2, 5, 10, 30, 60)
#: Distinct merged verification policies kept (channels with their own settings each add one).
POLICIES_HELD = 1024
#: Reads an event kept in the inbox back (a message, or a command another worker received).
KEPT_EVENT: TypeAdapter[AdapterEvent] = TypeAdapter(AdapterEvent)


class TroupeApp:
    def __init__(
        self,
        settings: Settings,
        *,
        stack: ModelStack | None = None,
        storage: Storage | None = None,
        verifier: Verifier | None = None,
    ) -> None:
        self.settings = settings
        self.stack = stack or build_model(settings)
        self.storage = storage or storage_for(settings, single_writer=True)
        self.adapters: dict[str, Adapter] = {}
        self._tasks: set[asyncio.Task] = set()
        #: Set while no task runs and no received event waits: ``wait_idle`` returns at once.
        self._idle = asyncio.Event()
        self._idle.set()
        self._pending_events = 0
        self._queues: dict[str, asyncio.Queue] = {}
        self._workers: dict[str, asyncio.Task] = {}
        self._listeners: list[asyncio.Task] = []
        self._hurry = asyncio.Event()
        #: Long-lived retries (catch-up) that ``wait_idle`` does not wait for; ``stop`` cancels them.
        self._background: set[asyncio.Task] = set()
        #: Why the app stopped by itself (the database became unusable), or None.
        self.failure: StorageUnavailableError | None = None
        self.storage.on_unavailable = self._storage_unavailable
        #: Which channels this process runs, when several share the database (one, with SQLite).
        self.ownership = ChannelOwnership(self.storage, ttl_s=settings.lease_s, adopt=self._adopt,
                                          lost=self._lose, wake=self._wake, idle=self._channel_idle,
                                          workers=self._share_limits, sweep=self._sweep_inbox,
                                          placement=self._placement, taken=self._taken)
        #: Inbox entries queued here, so a wake-up does not queue one twice.
        self._queued_inbox: set[int] = set()
        #: Channels whose worker is handling an event now (taken off the queue, not done yet).
        self._handling: set[str] = set()
        #: Inbox entries put back behind earlier ones once (``_after_earlier``), until handled.
        self._reordered: set[int] = set()
        self._adopting: dict[str, asyncio.Future[None]] = {}
        #: Channel histories read at once (catching up after a restart or a takeover).
        self._reading_history = asyncio.Semaphore(CATCH_UP_CONCURRENCY)
        self.interviews = Interviews(self.storage)
        self.outbox = Outbox(self.storage, self.adapters, spawn=self._track, interviews=self.interviews,
                             owns=self.ownership.holds, take=self.ownership.claim)
        self.collector = QuietCollector()
        self._fixed_verifier = verifier
        #: The process the offline checks run in, or None: they run in this one.
        mode = settings.bot.verification_process
        self.verification_process = (
            VerificationProcess(start_at_rate=None if mode == "on" else AUTO_RATE) if wanted(mode) else None
        )
        self._verifiers: dict[str, Verifier] = {}
        #: Merged policies (and their JSON, the verifier key) by what they are merged from. Merging
        #: validates the whole policy again: every reply paid for it before it was kept here.
        self._policies: dict[tuple[str, str, str], tuple[VerificationPolicy, str]] = {}
        self._building: dict[str, asyncio.Future[Verifier]] = {}
        self.services = Services(
            storage=self.storage,
            verifier_for=self.verifier_for,
            policy_for=self.policy_for,
            outbox=self.outbox,
            adapters=self.adapters,
            model=self.stack.model,
            ledger=self.stack.ledger,
            settings=settings.bot,
            spawn=self.spawn,
            is_moderator=self.is_moderator,
            fence=self.ownership.fence,
            take=self.ownership.acquire,
        )
        self.sessions = SessionManager(self.services)
        self.branches = Branches(self.services, self.sessions)
        self.permissions = ModeratorPolicy(settings.bot)
        self.focus_groups = FocusGroups(self.outbox, self.spawn)
        self.commands = CommandRegistry(CommandServices(
            settings=settings.bot,
            sessions=self.sessions,
            storage=self.storage,
            outbox=self.outbox,
            stack=self.stack,
            permissions=self.permissions,
            focus_groups=self.focus_groups,
            interviews=self.interviews,
            branches=self.branches,
            spawn=self.spawn,
        ))
        self.command_rates = CommandRateLimiter(settings.bot.rate_limits)

    async def is_moderator(self, user: UserRef, channel: ChannelRef) -> bool:
        """Whether ``user`` is a moderator in ``channel`` now: by the settings as they are, and by the
        roles and permissions the platform gives them now (not when they last ran a command)."""
        adapter = self.adapters.get(channel.platform)
        current = await adapter.member(user, channel) if adapter is not None else user
        return current is not None and self.permissions.is_moderator(current, channel.platform)

    def policy_for(self, config: SessionConfig, channel_key: str = "") -> VerificationPolicy:
        """A channel's verification policy: the configured one, then the config file's overrides
        for this channel, then the channel's own (set by its moderators), then its safety mode."""
        return self._merged_policy(config, channel_key)[0]

    def _merged_policy(self, config: SessionConfig, channel_key: str) -> tuple[VerificationPolicy, str]:
        key = (channel_key, config.safety_mode, json.dumps(config.verification, sort_keys=True, default=str))
        found = self._policies.get(key)
        if found is None:
            file_overrides = self.settings.channel_verification.get(channel_key, {})
            policy = self.settings.verification.merged(file_overrides).merged(
                {**config.verification, "mode": config.safety_mode}
            )
            if len(self._policies) >= POLICIES_HELD:
                self._policies.clear()
            found = self._policies[key] = (policy, policy.model_dump_json())
        return found

    async def verifier_for(self, config: SessionConfig, channel_key: str = "") -> Verifier:
        """The verifier of a channel, built once per distinct policy.

        Built in a worker thread: the process's first build imports the checks and compiles their
        patterns (most of a second), which on the loop would hold up every channel's replies.
        """
        if self._fixed_verifier is not None:
            return self._fixed_verifier
        policy, key = self._merged_policy(config, channel_key)
        verifier = self._verifiers.get(key)
        if verifier is not None:
            return verifier
        building = self._building.get(key)
        if building is None:
            building = self._building[key] = asyncio.ensure_future(
                asyncio.to_thread(build_verifier, policy, model=self.stack.model))
            building.add_done_callback(functools.partial(self._verifier_built, key))
        pipeline = await asyncio.shield(building)
        return self._verifiers.get(key, pipeline)

    def _verifier_built(self, key: str, building: asyncio.Future) -> None:
        self._building.pop(key, None)
        if not building.cancelled() and building.exception() is None:
            pipeline = building.result()
            process = self.verification_process
            self._verifiers[key] = pipeline if process is None else ProcessVerifier(pipeline, process, key)

    def _prepare_verification(self) -> None:
        """Build the default verifier in the background at start, before the first reply needs it."""

        async def prepare() -> None:
            try:
                await self.verifier_for(SessionConfig())
            except Exception:
                log.warning("could not prepare verification; it is built again for the first reply", exc_info=True)
            if self.verification_process is not None and self.verification_process.start_at_rate is None:
                await self.verification_process.start()  # "on": from the start

        task = asyncio.ensure_future(prepare())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- tasks --------------------------------------------------------------------------------

    def _track(self, task: asyncio.Future) -> None:
        self._tasks.add(task)  # type: ignore[arg-type]
        self._busy()
        task.add_done_callback(self._task_done)  # one callback: each is a pass of the loop's queue

    def _task_done(self, task: asyncio.Future) -> None:
        self._tasks.discard(task)  # type: ignore[arg-type]
        _log_failure(task)
        self._check_idle()

    def _busy(self) -> None:
        if self._idle.is_set():
            self._idle.clear()
            self.collector.busy()

    def _check_idle(self) -> None:
        if not self._tasks and self._pending_events == 0 and not self._idle.is_set():
            self._idle.set()
            self.collector.quiet()

    def spawn(self, awaitable: Awaitable[Any]) -> asyncio.Task:
        task = asyncio.ensure_future(awaitable)
        self._track(task)
        return task

    async def wait_idle(self) -> None:
        """Until every received event is handled, every turn taken and every post attempted."""
        while True:
            await asyncio.sleep(0)  # let just-submitted work register itself
            if self._idle.is_set():
                return
            await self._idle.wait()

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self, adapters: list[Adapter], *, listen: bool = True) -> None:
        """Open storage, connect, restore every bound channel, then listen; what is owed from the last
        run is posted meanwhile (each channel's posts keep their order, owed ones first).

        A start that fails, or is cancelled (Ctrl-C), closes what it opened before the error goes on:
        the adapters, the model client and the storage, whose worker threads would otherwise keep the
        process alive after the error was shown.
        """
        try:
            self._prepare_verification()
            await self.storage.open()
            await self.ownership.start()
            suggestions = PersonaSuggestions(self.sessions)
            for adapter in adapters:
                self.adapters[adapter.platform] = adapter
                adapter.attach(StoredAdapterState(self.storage, adapter.platform), MENU, suggestions)
            # Platforms connect side by side; every attempt ends before an error is raised, so a stop
            # after a failed start never disconnects an adapter still connecting.
            outcomes = await asyncio.gather(*(self._connect(adapter) for adapter in adapters), return_exceptions=True)
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome
            for session in await self.sessions.restore(take=self.ownership.claim, limit=await self.ownership.share()):
                await self.branches.restore(session)
            # Not awaited: at a 1-post-a-second pace, a backlog would keep the bot deaf for as long.
            self._track(asyncio.ensure_future(self.outbox.flush_all()))
            await self.replay_inbox()
            await self.catch_up()
            self.ownership.run()
            self.collector.install()
            if listen:
                self.listen()
        except BaseException:
            try:
                await self.stop(timeout=0)  # what was under way resumes from storage at the next start
            except Exception:
                log.warning("could not close everything after a failed start", exc_info=True)
                await self.storage.close()
                await self.stack.model.aclose()
            raise

    async def _connect(self, adapter: Adapter) -> None:
        """Connect, trying again a few times when the platform failed for a moment (a 503 at start-up)."""
        for delay in (*CONNECT_RETRY_DELAYS_S, None):
            try:
                await adapter.connect()
                return
            except AdapterError as error:
                if not error.retryable or delay is None:
                    raise
                log.warning("could not connect to %s (%s); trying again in %g s", adapter.platform, error, delay)
            await asyncio.sleep(delay)

    async def catch_up(self) -> None:
        """Hear what people wrote in bound channels while the bot was away, in order, once.

        A channel whose history cannot be read now is tried again in the background, from the same
        point, so a message written while the bot was down is heard late rather than never.
        """
        await asyncio.gather(*(self._catch_up(session) for session in self.sessions.all()))

    async def _catch_up(self, session: Any) -> None:
        """Catch up on a channel and on the threads its branches talk in."""
        adapter = self.adapters.get(session.channel.platform)
        if adapter is None:
            return

        async def catch_up(session: Any) -> None:
            if (after := _heard_after(session, adapter)) is None or await self._catch_up_channel(adapter, session, after):
                return
            # In the background, not counted by wait_idle: a platform may stay unreadable for minutes.
            task = asyncio.ensure_future(self._catch_up_later(adapter, session, after))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

        await asyncio.gather(*(catch_up(s) for s in (session, *self.branches.of_channel(session.channel.key))))

    async def _catch_up_channel(self, adapter: Adapter, session: Any, after: str) -> bool:
        try:
            # Channels are read a few at a time: one after another, hundreds of them would keep the
            # bot deaf for as many round trips; all at once would run into the platform's rate limits.
            async with self._reading_history:
                missed = await adapter.catch_up(session.channel, after)
        except Exception as error:  # a platform that cannot tell us now is no reason not to start
            log.warning("could not catch up on %s yet: %s", session.channel.key, error)
            return False
        # A channel's catch-up holds its threads' messages too: each goes where it would have gone
        # live (a branch's thread to the branch, which may also have read it; it hears it once).
        missed = [m for m in missed if not (self.branches.hearing(m.channel) or session).heard(m.message_id)]
        if missed:
            log.info("catching up on %d message(s) in %s", len(missed), session.channel.key)
        # Kept in the inbox before anything else is heard: if the bot stops before hearing them, the
        # next start replays them, even once later messages have moved the catch-up point past them.
        kept = await asyncio.gather(*(self.storage.inbox_add(m.channel.key, m.model_dump(mode="json"))
                                      for m in missed))
        for message, entry_id in zip(missed, kept):
            self.submit(adapter, message, entry_id)
        return True

    async def _catch_up_later(self, adapter: Adapter, session: Any, after: str) -> None:
        for delay in CATCH_UP_RETRY_DELAYS:
            await asyncio.sleep(delay)
            running = self.branches.hearing(session.channel)
            if running is not session:
                return  # the world was stopped meanwhile
            if await self._catch_up_channel(adapter, session, after):
                return
        log.error("gave up catching up on %s: messages written while the bot was down may be missing",
                  session.channel.key)

    def listen(self) -> None:
        """Start taking events from every connected adapter."""
        for adapter in self.adapters.values():
            self._listeners.append(asyncio.ensure_future(self._listen(adapter)))

    async def run_until_disconnected(self) -> None:
        """Until every platform disconnects and the work they brought is done, or the database
        becomes unusable (``failure`` then says why)."""
        outcomes = await asyncio.gather(*self._listeners, return_exceptions=True)
        if self.failure is not None:
            return
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        await self.wait_idle()

    def _storage_unavailable(self, error: StorageUnavailableError) -> None:
        """Nothing heard from now on could be kept: stop listening (platforms keep the messages, and
        the console its journal, for the next start) instead of answering and forgetting."""
        self.failure = error
        for task in self._listeners:
            task.cancel()

    def hurry(self) -> None:
        """Make a ``stop`` under way stop waiting for in-flight work (a second Ctrl-C or SIGTERM)."""
        self._hurry.set()

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop listening, let in-flight turns and posts finish for up to ``timeout`` seconds, close.

        Whatever is cut short stays in storage and resumes at the next start.
        """
        for task in [*self._listeners, *self._background]:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await asyncio.gather(*self._listeners, return_exceptions=True)
        self.outbox.close()
        idle = asyncio.ensure_future(self.wait_idle())
        hurried = asyncio.ensure_future(self._hurry.wait())
        done, _ = await asyncio.wait({idle, hurried}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for waiter in (idle, hurried):
            waiter.cancel()
        if idle not in done:
            log.warning("stopping with work still in flight; it resumes from storage at the next start")
        for worker in self._workers.values():
            worker.cancel()
        await asyncio.gather(*self._workers.values(), return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for adapter in self.adapters.values():
            await adapter.disconnect()
        await self.ownership.stop()
        await self.storage.close()
        await self.stack.model.aclose()
        if self.verification_process is not None:
            await self.verification_process.aclose()
        self.collector.uninstall()

    # -- events -------------------------------------------------------------------------------

    async def _listen(self, adapter: Adapter) -> None:
        async for event in adapter.listen():
            kept: asyncio.Future | None = None
            if isinstance(event, IncomingMessage) and not event.user.is_bot:
                # Kept in the inbox as it arrives: a message waiting behind a busy channel survives a crash.
                kept = asyncio.ensure_future(self.storage.inbox_add(event.channel.key, event.model_dump(mode="json")))
                kept.add_done_callback(functools.partial(_say_kept, event))
            elif isinstance(event, IncomingMessage):
                event.kept()
            self.submit(adapter, event, kept)

    async def replay_inbox(self) -> None:
        """Messages received but not handled before the last stop, handled now (once: ids are checked)."""
        await self._queue_kept(await self.storage.inbox_pending())

    async def _queue_kept(self, entries: list[tuple[int, str, dict[str, Any]]]) -> None:
        for entry_id, _key, data in entries:
            if entry_id in self._queued_inbox:
                continue
            try:
                event = KEPT_EVENT.validate_python(data)
            except ValidationError:
                log.warning("dropping unreadable inbox entry %s", entry_id)
                await self.storage.inbox_done(entry_id)
                continue
            adapter = self.adapters.get(event.channel.platform)
            if adapter is not None:
                self.submit(adapter, event, entry_id)

    # -- channels run by several workers --------------------------------------------------------

    async def _own(self, adapter: Adapter, event: AdapterEvent, entry_id: int | None) -> bool:
        """Whether this worker runs the event's channel (taking it when nobody does). When another
        worker runs it, the event is kept in the inbox for that worker, which is woken."""
        key = event.channel.key
        if self.ownership.holds(key):
            adopting = self._adopting.get(key)
            if adopting is not None:  # taken over a moment ago: its world is being loaded
                await asyncio.shield(adopting)
            return True
        if await self.ownership.acquire(key):
            await self._adopt(key)
            return True
        if entry_id is None:
            await self.storage.inbox_add(key, event.model_dump(mode="json"))
        await self.storage.notify(INBOX_TOPIC, key)
        return False

    def _taken(self, channel_key: str) -> None:
        """A channel's lease was taken here: before its world is loaded (which may answer at once),
        the outbox takes what the last worker left pending as in doubt, looked for before posted."""
        self.outbox.adopt(channel_key)

    async def _adopt(self, channel_key: str) -> None:
        """Run a channel taken over here: its world from storage, what is left in its outbox (each
        entry looked for in the channel first), and what waits for it in the inbox. Once, however
        many ask at the same time (an event, and a scan for channels nobody runs)."""
        adopting = self._adopting.get(channel_key)
        if adopting is None:
            adopting = self._adopting[channel_key] = asyncio.ensure_future(self._adopt_once(channel_key))
            adopting.add_done_callback(lambda _: self._adopting.pop(channel_key, None))
        await asyncio.shield(adopting)

    async def _adopt_once(self, channel_key: str) -> None:
        if self.sessions.get(channel_key) is None:
            record = await self.storage.world_for_channel(channel_key)
            if record is not None and record.status is not WorldStatus.STOPPED:
                adopted = await self.sessions.adopt(record)
                if adopted is not None:
                    await self.branches.restore(adopted)
        self.spawn(self.outbox.deliver(channel_key))  # (in doubt since the lease was taken: ``_taken``)
        self._wake(channel_key)
        # What its last worker received but had not kept when it died is read from the channel (and
        # its branches' threads).
        if (session := self.sessions.get(channel_key)) is not None:
            await self._catch_up(session)

    async def _sweep_inbox(self) -> None:
        """Queue what waits in the inbox for channels run here (a wake-up may have been missed
        while the connection that carries them was down)."""
        waiting = [entry for entry in await self.storage.inbox_pending() if self.ownership.holds(entry[1])]
        await self._queue_kept(waiting)

    async def _share_limits(self, workers: int) -> None:
        """Limits set for the deployment are shared by the workers alive: the model's concurrency."""
        model = self.stack.model
        limiter = model.find(ConcurrencyLimitedModel) if isinstance(model, ModelWrapper) else None
        if isinstance(limiter, ConcurrencyLimitedModel):
            await limiter.share_among(workers)

    def _placement(self, channel_key: str) -> bool | None:
        """Where the channel's events arrive (``Adapter.runs_here``); a channel of a platform this
        worker is not connected to is another worker's."""
        platform, _, channel_id = channel_key.partition(":")
        adapter = self.adapters.get(platform)
        return False if adapter is None else adapter.runs_here(channel_id)

    async def _lose(self, channel_key: str) -> None:
        """Another worker runs the channel now: stop running its world (and its branches) here."""
        self.sessions.forget(channel_key)
        self.branches.forget(channel_key)

    def _wake(self, channel_key: str) -> None:
        """Events another worker kept for a channel run here: queue them."""

        async def queue_kept() -> None:
            await self._queue_kept(await self.storage.inbox_pending(channel_key))

        self.spawn(queue_kept())

    def _channel_idle(self, channel_key: str) -> bool:
        """Nothing under way in the channel: it may be handed to another worker."""
        queue = self._queues.get(channel_key)
        session = self.sessions.get(channel_key)
        return ((queue is None or queue.empty()) and channel_key not in self._handling
                and all(not s.busy and not s.lock.locked()
                        for s in [*([session] if session is not None else []), *self.branches.of_channel(channel_key)]))

    def submit(self, adapter: Adapter, event: AdapterEvent, kept: asyncio.Future | int | None = None) -> None:
        """Queue an event on its channel; channels are handled concurrently, events in order.

        ``kept`` is the event's inbox entry (or the pending write of it), settled once it is handled.
        """
        key = event.channel.key
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = asyncio.Queue()
            self._workers[key] = asyncio.ensure_future(self._channel_worker(queue))
        if isinstance(kept, int):
            self._queued_inbox.add(kept)
        self._pending_events += 1
        self._busy()
        queue.put_nowait((adapter, event, kept))

    async def _channel_worker(self, queue: asyncio.Queue) -> None:
        while True:
            adapter, event, kept = await queue.get()
            self._handling.add(event.channel.key)
            #: The inbox entry this copy of the event settles (None: not kept, or another copy's).
            entry_id: int | None = kept if isinstance(kept, int) else None
            requeued: int | None = None
            try:
                if isinstance(kept, asyncio.Future):
                    try:
                        entry_id = await kept
                    except StorageUnavailableError:
                        continue  # reported once; the app is stopping, and the message is heard at the next start
                    except Exception:  # not kept, but still heard now
                        log.warning("could not keep a received message in the inbox", exc_info=True)
                        entry_id = None
                    if entry_id in self._queued_inbox:
                        entry_id = None
                        continue  # a wake-up queued it from the inbox meanwhile; that copy handles it
                    if entry_id is not None:
                        self._queued_inbox.add(entry_id)
                await fair_turn()
                if not await self._own(adapter, event, entry_id):
                    continue  # kept for the worker that runs the channel
                if entry_id is not None and await self._after_earlier(adapter, event, entry_id):
                    requeued = entry_id
                    continue  # heard after what reached other workers before it
                await self.handle(adapter, event)
                if entry_id:
                    await self.storage.inbox_done(entry_id)
            except StorageUnavailableError:
                pass  # reported once, when it happened; the app is stopping
            except StaleOwnerError:
                # Taken over meanwhile: the event stays in the inbox for the channel's new owner, woken.
                await self._lose(event.channel.key)
                if entry_id is not None:
                    with contextlib.suppress(StorageError):
                        await self.storage.notify(INBOX_TOPIC, event.channel.key)
            except Exception:
                log.exception("failed to handle %s", event.kind)
            finally:
                self._handling.discard(event.channel.key)
                if entry_id is not None and entry_id != requeued:
                    self._queued_inbox.discard(entry_id)
                    self._reordered.discard(entry_id)
                queue.task_done()
                self._pending_events -= 1
                self._check_idle()

    async def _after_earlier(self, adapter: Adapter, event: AdapterEvent, entry_id: int) -> bool:
        """With several workers, messages for a channel also reach it through the inbox, later than
        ones received here: an event kept after others still waiting there goes back in the queue
        behind them (once), so the channel hears everything in the order it was received. Asked
        whenever the database is shared: a worker that just started is not yet counted as alive."""
        if not self.storage.shared or entry_id in self._reordered:
            return False
        waiting = [entry for entry in await self.storage.inbox_pending(event.channel.key) if entry[0] < entry_id]
        if not waiting:
            return False
        await self._queue_kept(waiting)
        self._reordered.add(entry_id)
        self.submit(adapter, event, entry_id)
        return True

    async def handle(self, adapter: Adapter, event: AdapterEvent) -> None:
        session = self.sessions.get(event.channel.key)
        request = event.reply_token if isinstance(event, CommandInvocation) else event.message_id
        with log_context(channel=event.channel.key, world=session.world.id if session else None, request=request):
            await self._handle(adapter, event)

    async def _handle(self, adapter: Adapter, event: AdapterEvent) -> None:
        if isinstance(event, CommandInvocation):
            await self._command(adapter, event)
        elif isinstance(event, IncomingMessage):
            if event.user.is_bot or not event.text.strip():
                return
            persona = await self.interviews.persona_in(event.channel)
            if persona is not None:
                # Everything written in an interview thread is a question put to its persona.
                question = CommandInvocation(channel=event.channel, user=event.user,
                                             text=f"ask {quote_word(persona)} {event.text.strip()}")
                await self._command(adapter, question, interviewed=persona)
                return
            # A branch's thread is heard by that branch alone; the rest of the channel by its world.
            session = self.branches.hearing(event.channel)
            stopped = self.branches.stopped_in(event.channel)
            if stopped is not None:
                if adapter.explains_silence:
                    await adapter.reply_private(event.user, event.channel, prefixed(
                        f"Nobody heard that: the branch “{stopped}” of this thread was stopped.", adapter.command_prefix))
                return
            if session is None and not self.ownership.holds(event.channel.key):
                # Its world went to another worker while this message waited: it stays in the inbox there.
                raise StaleOwnerError(f"{event.channel.key} is run by another worker now")
            if session is not None:
                # A message delivered again (a platform's retry) is heard once, and counted once.
                counted = not adapter.on_host and not (event.message_id and session.heard(event.message_id))
                over = self.command_rates.unanswered(
                    event, moderator=self.permissions.is_moderator(event.user, event.channel.platform)) if counted else None
                await session.hear(event.user, event.text, event.message_id, answer=over is None,
                                   thread=event.channel.thread)
                if over:
                    try:
                        await adapter.reply_private(event.user, event.channel, prefixed(over, adapter.command_prefix))
                    except AdapterError as error:  # DMs closed, say: the message was heard all the same
                        log.info("could not tell %s why their message gets no answer: %s", event.user.id, error)
            if not adapter.explains_silence:
                return
            if session is None:
                why = "Nobody heard that: this channel has no world. `start NAME` begins one (`help` lists the commands)."
            elif session.paused:
                why = f"“{session.world.name}” is paused: the personas heard you and answer after `resume`."
            else:
                return
            await adapter.reply_private(event.user, event.channel, prefixed(why, adapter.command_prefix))

    async def _command(self, adapter: Adapter, invocation: CommandInvocation, *, interviewed: str | None = None) -> None:
        refusal = None if adapter.on_host else self.command_rates.refusal(
            invocation, moderator=self.permissions.is_moderator(invocation.user, invocation.channel.platform))
        if refusal:
            reply = Reply(refusal, private=True, failed=True)
        else:
            try:
                reply = await self.commands.run(adapter, invocation, interviewed=interviewed)
            except (StorageUnavailableError, StaleOwnerError):
                raise  # the app is stopping, or the channel moved to another worker: handled by the caller
            except Exception as error:
                # A failure nobody foresaw (a bug): the log keeps the traceback for whoever runs the bot;
                # the one who asked is told it could not be done, and a script counts it as failed.
                log.exception("failed to handle command")
                reply = Reply(f"That command could not be done: an unexpected error ({type(error).__name__}) "
                              "stopped it. The details are in the bot's log; `status` shows where the world "
                              "stands.", private=True, failed=True)
        await self._answer(adapter, invocation, reply)

    async def _answer(self, adapter: Adapter, invocation: CommandInvocation, reply: Reply) -> None:
        if reply.failed:
            adapter.command_failed(invocation)
        if not reply.text and reply.card is None and reply.file is None:
            return  # nothing to say (the answer is elsewhere, e.g. in an interview thread)
        reply = with_command_prefix(reply, adapter.command_prefix)
        text = reply.text
        if reply.file is not None:
            filename, data = reply.file
            if await adapter.upload(invocation.channel, filename, data, reply.text) is not None:
                return
            if not adapter.on_host:
                # Nothing is kept on the host for someone elsewhere: files would pile up there, out of
                # their reach, and its paths are not theirs to know. The stored world can be exported again.
                if not reply.failed:
                    adapter.command_failed(invocation)
                reply = Reply(f"{reply.text} Could not share {filename} here: the platform did not take the file "
                              "(it may be too large, or the bot may not attach files in this channel). Nothing "
                              "was kept; try again later, or ask whoever runs the bot.", private=True, failed=True)
                text = reply.text
            else:
                text = self._save_on_host(adapter, invocation, reply, filename, data)
        if reply.card is not None:
            await adapter.post_card(invocation.channel, reply.card, invocation=invocation, private=reply.private)
            return
        if reply.private:
            await adapter.reply_private(invocation.user, invocation.channel, text, reply_token=invocation.reply_token)
        else:
            await adapter.reply(invocation, text)

    def _save_on_host(self, adapter: Adapter, invocation: CommandInvocation, reply: Reply, filename: str,
                      data: bytes) -> str:
        """Keep a file the console cannot show in the exports folder; what to tell its user."""
        try:
            path = self._export_path(filename)
            path.write_bytes(data)
        except OSError as error:  # e.g. the exports folder is a file: said like a chart that cannot be saved
            if not reply.failed:
                adapter.command_failed(invocation)
            where = f" ({error.filename})" if error.filename else ""
            return f"{reply.text} Could not save {filename}: {error.strerror or error}{where}."
        return f"{reply.text} Saved to {path}."

    def _export_path(self, filename: str) -> Path:
        """A new file in the exports folder: an earlier export or extraction is never overwritten
        (``team-room.md``, then ``team-room-2.md``, …)."""
        return free_path(self.settings.data_dir / "exports", filename)


class StoredAdapterState(AdapterState):
    """An adapter's state, kept in the bot's database."""

    def __init__(self, storage: Storage, platform: str) -> None:
        self.storage = storage
        self.platform = platform

    async def get(self, key: str) -> dict[str, Any] | None:
        return await self.storage.adapter_state(self.platform, key)

    async def set(self, key: str, value: dict[str, Any] | None) -> None:
        await self.storage.set_adapter_state(self.platform, key, value)

    async def take(self, key: str) -> dict[str, Any] | None:
        return await self.storage.take_adapter_state(self.platform, key)

    async def forget_stale(self, prefix: str, stored_before: datetime) -> None:
        await self.storage.forget_stale_adapter_state(self.platform, prefix, stored_before)


def _log_failure(task: asyncio.Future) -> None:
    if not task.cancelled() and task.exception() is not None and not isinstance(task.exception(), StorageUnavailableError):
        log.error("background task failed", exc_info=task.exception())


def _heard_after(session: Any, adapter: Adapter) -> str | None:
    """Where a channel's missed messages start: after the last one its world heard, or, if it has
    heard none yet, after the world began."""
    return session.last_heard_id or adapter.message_id_at(session.record.created_at)


def _say_kept(message: IncomingMessage, keeping: asyncio.Future) -> None:
    """Tell the adapter whether ``message`` is in the inbox (it acknowledges it to the platform then)."""
    message.kept(not keeping.cancelled() and keeping.exception() is None)
