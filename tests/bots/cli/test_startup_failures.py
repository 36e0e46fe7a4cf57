"""Starting up when something is wrong: every failure ends the process with one line saying what is
wrong and what to do, exit code 2 for what must be changed (a setting, a file, a folder), 1 for what
failed at run time (a damaged database, a full disk), and never a hang or a traceback."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import random
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.base import AdapterError
from adapters.memory import MemoryAdapter
from bots.app import TroupeApp
from bots.storage import StorageError
from bots.storage.sqlite import DatabaseInUseError, SQLiteStorage
from tests.support.cli import RUN_TIMEOUT_S, run_troupe, script, unprivileged
from tests.support.paths import ROOT
from tests.support.testbot import demo_settings


def one_clear_line(code: int | str, out: str, err: str, expected: int, *phrases: str) -> None:
    """Exited with ``expected``, saying each phrase, without a traceback or pydantic's links."""
    assert code == expected, (code, out, err)
    for phrase in phrases:
        assert phrase in out + err, (phrase, out, err)
    assert "Traceback" not in out + err and "errors.pydantic.dev" not in out + err, out + err


@pytest.fixture(scope="module")
def console_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder the console has run in once: the sample world, a message and its answers."""
    data = tmp_path_factory.mktemp("console") / "data"
    here = data.parent
    code, out, err = run_troupe("console", "--script", str(script(here, "Hello, first run")),
                                env={"TROUPE_DATA_DIR": str(data)})
    assert code == 0, out + err
    return data


@pytest.fixture
def data(console_db: Path, tmp_path: Path) -> Path:
    """A copy of ``console_db`` to break."""
    copy = tmp_path / "data"
    shutil.copytree(console_db, copy)
    return copy


def damage(database: Path, table: str) -> None:
    """Overwrite the first page of ``table`` with noise, as a failing disk would."""
    with sqlite3.connect(database) as db:
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
    db.close()
    with database.open("r+b") as file:
        file.seek((root - 1) * page_size)
        file.write(random.Random(7).randbytes(page_size))


def worker_threads() -> set[threading.Thread]:
    """aiosqlite's connection threads still running: each keeps the process from exiting."""
    return {t for t in threading.enumerate() if "_connection_worker_thread" in t.name and t.is_alive()}


def lingering(before: set[threading.Thread]) -> set[threading.Thread]:
    """Connection threads started since ``before`` that do not end (a closed one ends in a moment)."""
    for thread in worker_threads() - before:
        thread.join(timeout=5)
    return worker_threads() - before


# -- a start that fails closes what it opened -------------------------------------------------


class RefusingAdapter(MemoryAdapter):
    async def connect(self) -> None:
        raise AdapterError("the token was refused", retryable=False)


class StuckAdapter(MemoryAdapter):
    def __init__(self) -> None:
        super().__init__()
        self.connecting = asyncio.Event()

    async def connect(self) -> None:
        self.connecting.set()
        await asyncio.Event().wait()


async def test_a_start_that_fails_after_storage_opened_closes_it(tmp_path):
    before = worker_threads()
    app = TroupeApp(demo_settings(tmp_path))
    with pytest.raises(AdapterError, match="refused"):
        await app.start([RefusingAdapter()])
    assert app.storage._state.closed, "the storage was closed"
    assert not lingering(before), "no connection thread is left to keep the process alive"
    # The lock is released with it: the next start is not refused as "in use".
    async with SQLiteStorage(tmp_path / "troupe.db", single_writer=True):
        pass


async def test_a_start_cancelled_by_ctrl_c_closes_what_it_opened(tmp_path):
    before = worker_threads()
    app = TroupeApp(demo_settings(tmp_path))
    adapter = StuckAdapter()
    starting = asyncio.ensure_future(app.start([adapter]))
    await asyncio.wait_for(adapter.connecting.wait(), 10)
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    assert app.storage._state.closed and not lingering(before)


async def test_a_database_damaged_where_start_reads_it_closes_it(console_db, tmp_path):
    database = tmp_path / "troupe.db"
    shutil.copy(console_db / "troupe.db", database)
    damage(database, "worlds")
    before = worker_threads()
    app = TroupeApp(demo_settings(tmp_path))
    with pytest.raises(StorageError, match="malformed"):
        await app.start([MemoryAdapter()])
    assert app.storage._state.closed and not lingering(before)


def test_the_console_on_a_damaged_database_says_so_and_exits(data, tmp_path):
    damage(data / "troupe.db", "worlds")
    code, out, err = run_troupe("console", "--script", str(script(tmp_path, "Hello?")),
                                env={"TROUPE_DATA_DIR": str(data)})
    one_clear_line(code, out, err, 1, "is damaged", "run `troupe doctor`; restore a backup (docs/configuration.md")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB file system, mounted for the test (root only)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small file system here")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_the_console_on_a_full_disk_says_so_and_exits(small_disk, tmp_path):
    """A line typed in the last run but not stored yet (the disk filled up) is stored at the next start:
    that start failed with the storage open, and the process hung after printing the error."""
    env = {"TROUPE_DATA_DIR": str(small_disk)}
    code, out, err = run_troupe("console", "--script", str(script(tmp_path, "Hello, first run")), env=env)
    assert code == 0, out + err
    with (small_disk / "console" / "console-typed.jsonl").open("a") as typed:
        typed.write('{"id": "%020d", "text": "typed as the disk filled up"}\n' % time.time_ns())
    # A reader (an export, say) keeps the -wal and -shm files there: the start opens the database
    # without needing room, and fails at its first write.
    reader = sqlite3.connect(small_disk / "troupe.db")
    try:
        reader.execute("SELECT count(*) FROM worlds").fetchone()
        with (small_disk / "filler").open("wb", buffering=0) as filler:  # whatever room is left
            with contextlib.suppress(OSError):
                while True:
                    filler.write(b"\0" * 4096)
        code, out, err = run_troupe("console", "--script", str(script(tmp_path, "Hello?")), env=env)
    finally:
        reader.close()
    one_clear_line(code, out, err, 1, f"the disk holding {small_disk / 'troupe.db'} is full", "free some space there")


async def test_a_stop_that_fails_part_way_still_closes_the_storage(tmp_path):
    from bots.cli import _stop_app

    class BrokenAdapter(MemoryAdapter):
        async def disconnect(self) -> None:
            raise OSError(28, "No space left on device")

    before = worker_threads()
    app = TroupeApp(demo_settings(tmp_path))
    await app.start([BrokenAdapter()])
    assert await _stop_app(app) == "could not stop cleanly: [Errno 28] No space left on device"
    assert app.storage._state.closed and not lingering(before)


def test_serve_on_a_damaged_database_says_so_and_exits(data):
    damage(data / "troupe.db", "worlds")
    code, out, err = run_troupe("serve", "--console", env={"TROUPE_DATA_DIR": str(data)})
    one_clear_line(code, out, err, 1, "is damaged", "troupe doctor")


# -- the console's script and Ctrl-C ----------------------------------------------------------


def test_a_script_that_is_not_utf8_a_folder_or_endless_is_refused_before_anything_starts(tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"Hello \xff\n")
    env = {"TROUPE_DATA_DIR": str(tmp_path / "data")}
    code, out, err = run_troupe("console", "--script", str(bad), env=env)
    one_clear_line(code, out, err, 2, f"{bad} is not UTF-8 text", "save it as UTF-8")
    code, out, err = run_troupe("console", "--script", str(tmp_path), env=env)
    one_clear_line(code, out, err, 2, f"{tmp_path} is a folder")
    assert "no such script file" not in out
    code, out, err = run_troupe("console", "--script", "/dev/zero", env=env)
    one_clear_line(code, out, err, 2, "/dev/zero is larger than 10 MB")


@pytest.mark.parametrize("delay", [0.0, 0.3])
def test_ctrl_c_while_the_console_starts_exits_at_once(tmp_path, delay):
    """Ctrl-C after the banner, before the prompt: the process ends ("interrupted", 130; or 0 on a
    slow machine where the prompt was already up and took it as its own Ctrl-C)."""
    parent, child = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TROUPE_")}
    env.update(TROUPE_DATA_DIR=str(tmp_path / "data"), TERM="xterm", COLUMNS="200", PYTHONPATH=str(ROOT))
    # Started as from a terminal, Ctrl-C at its default: a test run in the background (``cmd &``)
    # ignores SIGINT, and a child would inherit that and rightly never see the Ctrl-C.
    proc = subprocess.Popen([sys.executable, "-m", "bots.cli", "console"], cwd=ROOT, env=env,
                            stdin=child, stdout=child, stderr=child, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    os.close(child)
    shown = b""
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while b"Type to talk" not in shown and time.monotonic() < deadline:
            shown += os.read(parent, 4096)
        assert b"Type to talk" in shown, shown
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        # The terminal keeps showing what the console writes while it stops (a full pty would block it).
        deadline = time.monotonic() + 15
        while proc.poll() is None and time.monotonic() < deadline:
            if select.select([parent], [], [], 0.1)[0]:
                try:
                    shown += os.read(parent, 4096)
                except OSError:
                    break
        assert proc.wait(timeout=max(0.1, deadline - time.monotonic())) in (130, 0), shown[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(parent)


# -- read-only folders and files --------------------------------------------------------------


@pytest.fixture
def read_only(data: Path) -> Iterator[Path]:
    """``data``, made read-only (the database left as the console left it: no -wal, no -shm)."""
    assert not (data / "troupe.db-wal").exists()
    data.chmod(0o555)
    try:
        yield data
    finally:
        data.chmod(0o755)


def test_export_and_backup_read_a_healthy_database_in_a_read_only_folder(read_only, tmp_path):
    prefix, env = unprivileged(), {"TROUPE_DATA_DIR": str(read_only)}
    before = sorted(p.name for p in read_only.iterdir())
    code, out, err = run_troupe("export", env=env, prefix=prefix)
    assert code == 0 and "Team room" in out, out + err
    code, out, err = run_troupe("export", "Team room", "--format", "md", env=env, prefix=prefix)
    assert code == 0 and "Hello, first run" in out, out + err
    code, out, err = run_troupe("backup", str(tmp_path / "copy.db"), env=env, prefix=prefix)
    assert code == 0 and "1 world" in out and "integrity ok" in out, out + err
    assert sorted(p.name for p in read_only.iterdir()) == before, "nothing was written beside the database"


def test_reading_recent_commits_of_a_read_only_folder_needs_their_shm_and_says_so(data, tmp_path):
    """Commits still in the -wal are read through the -shm: where this user can create neither, that
    is said, rather than a database read without its latest commits."""
    prefix = unprivileged()
    frozen = tmp_path / "frozen"
    frozen.mkdir()
    with sqlite3.connect(data / "troupe.db") as db:  # a running bot: commits in the -wal, not yet in the file
        db.execute("PRAGMA wal_autocheckpoint = 0")
        db.execute("INSERT INTO audit (at, channel_key, actor, action) VALUES ('now', 'c', 'a', 'b')")
        db.commit()
        for name in ("troupe.db", "troupe.db-wal"):
            shutil.copy(data / name, frozen / name)
    frozen.chmod(0o555)
    try:
        code, out, err = run_troupe("export", env={"TROUPE_DATA_DIR": str(frozen)}, prefix=prefix)
    finally:
        frozen.chmod(0o755)
    one_clear_line(code, out, err, 2, "holds commits not yet in", "troupe.db-shm", "cannot create")


def test_the_console_in_a_read_only_folder_says_what_to_change(read_only, tmp_path):
    prefix = unprivileged()
    code, out, err = run_troupe("console", "--script", str(script(tmp_path, "Hello?")),
                                env={"TROUPE_DATA_DIR": str(read_only)}, prefix=prefix)
    one_clear_line(code, out, err, 2, f"the folder {read_only} is not writable for this user", "chmod u+w")


def test_the_console_on_a_read_only_database_file_says_so_before_it_listens(data, tmp_path):
    """A typed line the last run did not store yet is read back at start: with a database this user
    may not write, the start stopped there and hung. Now it is refused when it is opened."""
    prefix = unprivileged()
    typed = data / "console" / "console-typed.jsonl"
    typed.write_text(typed.read_text() + '{"id": "%020d", "text": "typed, not stored"}\n' % time.time_ns())
    (data / "troupe.db").chmod(0o444)
    code, out, err = run_troupe("console", "--script", str(script(tmp_path, "Hello?")),
                                env={"TROUPE_DATA_DIR": str(data)}, prefix=prefix)
    one_clear_line(code, out, err, 2, f"the database {data / 'troupe.db'} is not writable for this user",
                   "chmod u+w")


def test_the_console_in_an_empty_read_only_folder_says_what_to_change(tmp_path):
    prefix = unprivileged()
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    try:
        for folder in (locked, locked / "data"):
            code, out, err = run_troupe("console", "--script", str(script(tmp_path, "Hello?")),
                                        env={"TROUPE_DATA_DIR": str(folder)}, prefix=prefix)
            one_clear_line(code, out, err, 2, f"cannot write in the data folder {folder}", "writable")
    finally:
        locked.chmod(0o755)


# -- another program's file, a file reached through a link ------------------------------------


@pytest.mark.parametrize("tables", [["customers (id INTEGER, name TEXT)"], ["worlds (id TEXT, owner TEXT)"]])
def test_another_programs_database_is_refused_and_left_unchanged(tmp_path, tables):
    data = tmp_path / "data"
    data.mkdir()
    database = data / "troupe.db"
    with sqlite3.connect(database) as db:
        for table in tables:
            db.execute(f"CREATE TABLE {table}")
    db.close()
    content = database.read_bytes()
    name = tables[0].split()[0]
    env = {"TROUPE_DATA_DIR": str(data)}
    for args in (("export",), ("console", "--script", str(script(tmp_path, "Hello?"))),
                 ("backup", str(tmp_path / "copy.db"))):
        code, out, err = run_troupe(*args, env=env)
        one_clear_line(code, out, err, 2, f"{database} is not a Troupe database (it has tables {name})",
                       "point TROUPE_BOT_DATABASE")
    code, out, err = run_troupe("doctor", env=env, cwd=tmp_path)
    one_clear_line(code, out, err, 1, f"✗ database  {database} is not a Troupe database (it has tables {name})")
    assert database.read_bytes() == content, "not a byte of it was changed"
    assert not (tmp_path / "copy.db").exists()


async def test_two_folders_sharing_a_database_through_a_link_share_its_lock(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "troupe.db").symlink_to(tmp_path / "a" / "troupe.db")
    async with SQLiteStorage(tmp_path / "a" / "troupe.db", single_writer=True):
        with pytest.raises(DatabaseInUseError, match=r"is in use by another Troupe process"):
            await SQLiteStorage(tmp_path / "b" / "troupe.db", single_writer=True).open()


# -- the channel's world: damaged, stopped, cut short -----------------------------------------


def world_names(database: Path) -> list[str]:
    with sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True) as db:
        names = [row[0] for row in db.execute("SELECT name FROM worlds ORDER BY created_at")]
    db.close()
    return names


def test_a_damaged_world_is_said_and_no_sample_world_is_made_in_its_place(data, tmp_path):
    damage(data / "troupe.db", "memories")
    code, out, err = run_troupe("console", "--script", str(script(tmp_path, "Hello?")),
                                env={"TROUPE_DATA_DIR": str(data)})
    one_clear_line(code, out, err, 1, "is damaged", "run `troupe doctor`; restore a backup (docs/configuration.md")
    assert "already has a world" not in out + err and "Started the world" not in out
    assert world_names(data / "troupe.db") == ["Team room"]


def test_the_sample_world_is_made_on_the_first_start_only(tmp_path):
    env = {"TROUPE_DATA_DIR": str(tmp_path / "data")}
    code, out, err = run_troupe("console", "--script", str(script(tmp_path, "/stop confirm")), env=env)
    assert code == 0 and "Started the world “Team room”" in out, out + err
    for _ in range(2):
        code, out, err = run_troupe("console", "--script", str(script(tmp_path, "/status")), env=env)
        assert code == 0, out + err
        assert "No world in this channel: /start NAME begins one" in out and "Started the world" not in out
    assert world_names(tmp_path / "data" / "troupe.db") == ["Team room"]
    code, out, err = run_troupe("export", env=env)
    assert out.count("Team room") == 1, out


async def test_a_sample_world_cut_short_by_a_kill_is_finished_at_the_next_start(tmp_path):
    """A kill -9 while the first start made the sample world left it with one persona, for good."""
    from adapters.base import ChannelRef, UserRef
    from simulation.persona import find_bundled_persona

    app = TroupeApp(demo_settings(tmp_path / "data"))
    await app.start([])
    session = await app.sessions.start(ChannelRef(platform="console", id="main", name="console"),
                                       UserRef(id="local", name="me", can_manage=True), "Team room", None)
    await session.add_persona(find_bundled_persona("Priya Nair"))
    await app.stop()  # where the kill left it: the world and its first persona stored

    env = {"TROUPE_DATA_DIR": str(tmp_path / "data")}
    code, out, err = await asyncio.to_thread(run_troupe, "console", "--script", str(script(tmp_path, "Hello")), env=env)
    assert code == 0, out + err
    assert "Started the world “Team room” with Priya Nair, Tomasz Kowalski, Henrik Lindqvist" in out
    assert "Tomasz Kowalski (demo model): " in out
    code, out, err = await asyncio.to_thread(run_troupe, "console", "--script", str(script(tmp_path, "/status")),
                                             env=env)
    assert "Continuing the world “Team room” with Priya Nair, Tomasz Kowalski, Henrik Lindqvist." in out
    assert world_names(tmp_path / "data" / "troupe.db") == ["Team room"]
