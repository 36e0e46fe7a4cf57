"""Starting up when something is wrong: every failure ends the process with one line saying what is
wrong and what to do, exit code 2 for what must be changed (a setting, a file, a folder), 1 for what
failed at run time (a damaged database, a full disk), and never a hang or a traceback."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import random
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
from tests.bot_support import demo_settings

ROOT = Path(__file__).resolve().parents[1]
#: Long enough for a slow machine to start and stop; a start that hangs takes longer.
RUN_TIMEOUT_S = 40


def run_troupe(*args: str, env: dict[str, str], cwd: Path | None = None, prefix: tuple[str, ...] = (),
               stdin: bytes | None = b"") -> tuple[int | str, str, str]:
    """``troupe ARGS`` in a process of its own: (exit code, or "hung", stdout, stderr)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TROUPE_", "OPENAI_"))}
    proc = subprocess.Popen([*prefix, sys.executable, "-m", "bots.cli", *args], cwd=cwd or ROOT,
                            env={**clean, "COLUMNS": "300", "PYTHONPATH": str(ROOT), **env},
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(stdin, timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return "hung", out.decode(), err.decode()
    return proc.returncode, out.decode(), err.decode()


def script(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "script.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


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


# -- read-only folders and files --------------------------------------------------------------


def unprivileged() -> tuple[str, ...]:
    """A command prefix that runs without the power to ignore file permissions (root has it)."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: file permissions cannot be tested")
    return (setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner", "--inh-caps=-all")


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
