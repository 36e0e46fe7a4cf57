"""``troupe backup``: a consistent copy of the live database, safe while the bot runs.

SQLite's online backup API copies the database page by page inside one read transaction. The
database is in WAL mode, so that read transaction never blocks the bot's writer: the copy is the
database as of the moment the backup started (every commit up to then, nothing half-written).

The copy is written next to the target under a temporary name, checked with ``PRAGMA
integrity_check`` and only then renamed into place, so a failed backup never leaves a broken file
where a good one is expected (and never replaces an earlier backup with a broken one).

Restoring: stop the bot, copy the backup over the database path (``troupe doctor`` shows it),
remove any ``-wal`` / ``-shm`` files next to it, start the bot. See docs/configuration.md.

On PostgreSQL the backup is ``pg_dump``'s (custom format), restored with ``pg_restore`` into an
empty database. pg_dump connects as Troupe does (asyncpg): to the same host, database and user, with
the same password, which it reads from its environment (never the command line) and never prompts for.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from bots.storage.base import StorageError
from bots.storage.sqlite import MIGRATIONS, connect_read_only, schema_problem, storage_failure

#: How long the backup waits for a lock held by another connection (the bot's writer, a checkpoint).
BUSY_TIMEOUT_S = 30.0


class BackupError(Exception):
    """The backup could not be made; the message says why and what to do."""


@dataclass
class BackupResult:
    path: Path
    size_bytes: int
    worlds: int
    schema_version: int


def default_backup_name(now: datetime | None = None, suffix: str = ".db") -> str:
    return f"troupe-{(now or datetime.now()):%Y%m%d-%H%M%S}{suffix}"


async def backup_database(source: Path, target: Path, *, force: bool = False) -> BackupResult:
    """Copy ``source`` to ``target`` (a file, or a folder to put a dated file in), in a thread."""
    return await asyncio.to_thread(backup_database_sync, Path(source), Path(target), force=force)


def backup_database_sync(source: Path, target: Path, *, force: bool = False) -> BackupResult:
    if not source.is_file():
        raise BackupError(f"no database at {source}: nothing to back up (check TROUPE_DATA_DIR or TROUPE_BOT_DATABASE)")
    if target.is_dir():
        target = target / default_backup_name()
    if target.exists() and not force:
        raise BackupError(f"{target} already exists; choose another path, or pass --force to overwrite it")
    if target.exists() and target.resolve() == source.resolve():
        raise BackupError(f"{target} is the live database itself; choose another path")
    if not target.parent.is_dir():
        raise BackupError(f"the folder {target.parent} does not exist")
    partial = target.with_name(f".{target.name}.partial")
    try:
        _copy(source, partial)
        result = _verify(partial, source)
        os.replace(partial, target)
    except StorageError as error:  # the source cannot be read: said with what to do
        raise BackupError(str(error)) from error
    except sqlite3.Error as error:
        raise BackupError(str(storage_failure(source, error, "back up"))) from error
    except OSError as error:
        raise BackupError(f"could not write {target}: {error}") from error
    finally:
        partial.unlink(missing_ok=True)
    result.path = target
    return result


def _copy(source: Path, partial: Path) -> None:
    partial.unlink(missing_ok=True)
    # Created private: conversations are in there. SQLite takes a zero-byte file as an empty database.
    os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    # Read-only: a backup works where this user may only read (see ``connect_read_only``).
    src = connect_read_only(source, timeout=BUSY_TIMEOUT_S)
    try:
        dst = sqlite3.connect(partial)
        try:
            # All pages in one step: one read transaction, so one consistent snapshot. Stepping
            # through it would restart whenever the bot commits, which on a busy bot is forever.
            src.backup(dst)
            # A self-contained file: no -wal beside it to forget when it is copied somewhere.
            dst.execute("PRAGMA journal_mode = DELETE")
        finally:
            dst.close()
    finally:
        src.close()


def _verify(path: Path, source: Path) -> BackupResult:
    """The copy's figures, once it passed its integrity check and proved to be a Troupe database."""
    db = sqlite3.connect(path)
    try:
        problems = [row[0] for row in db.execute("PRAGMA integrity_check(5)")]
        if problems != ["ok"]:
            raise BackupError(f"the copy failed its integrity check ({'; '.join(problems)}); the source may be damaged")
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        problem = schema_problem(source, version, tables)
        if problem is not None and version <= len(MIGRATIONS):  # a newer Troupe's database is worth a backup too
            raise BackupError(str(problem))
        worlds = db.execute("SELECT count(*) FROM worlds").fetchone()[0] if "worlds" in tables else 0
    finally:
        db.close()
    return BackupResult(path, path.stat().st_size, worlds, version)


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


# -- PostgreSQL ----------------------------------------------------------------------------------


async def backup_postgres(url: str, target: Path, *, force: bool = False) -> BackupResult:
    """``pg_dump`` of the database at ``url`` into ``target`` (a file, or a folder for a dated one), in
    PostgreSQL's custom format (``pg_restore`` reads it back). pg_dump copies one consistent snapshot
    while the workers go on writing."""
    from bots.storage.postgres import PostgresStorage

    storage = PostgresStorage(url, read_only=True, max_connections=1)
    try:
        await storage.open()
        worlds = len(await storage.all_worlds())
    except StorageError as error:
        raise BackupError(str(error)) from error
    finally:
        await storage.close()
    return await asyncio.to_thread(_dump, url, Path(target), worlds, force)


def _dump(url: str, target: Path, worlds: int, force: bool) -> BackupResult:
    from bots.storage.postgres.connection import hidden, shown_url
    from bots.storage.postgres.schema import MIGRATIONS as POSTGRES_MIGRATIONS

    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise BackupError("pg_dump was not found on PATH: install PostgreSQL's client tools of the server's version "
                          "or newer (e.g. `apt install postgresql-client`), then try again")
    if target.is_dir():
        target = target / default_backup_name(suffix=".dump")
    if target.exists() and not force:
        raise BackupError(f"{target} already exists; choose another path, or pass --force to overwrite it")
    if not target.parent.is_dir():
        raise BackupError(f"the folder {target.parent} does not exist")
    dbname, password = libpq_target(url)
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = password  # not on the command line, where any user could read it
    partial = target.with_name(f".{target.name}.partial")
    try:
        partial.unlink(missing_ok=True)
        # Created private, as the SQLite backup is: conversations are in there. pg_dump writes into it.
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        done = subprocess.run([pg_dump, "--format=custom", "--no-owner", "--no-privileges", "--no-password",
                               f"--file={partial}", f"--dbname={dbname}"],
                              capture_output=True, env=env, stdin=subprocess.DEVNULL, umask=0o077)
        if done.returncode != 0:
            why = hidden(done.stderr.decode(errors="replace").strip(), url)
            raise BackupError(f"pg_dump could not back up {shown_url(url)}: {why}")
        os.replace(partial, target)
    except OSError as error:
        raise BackupError(f"could not write {target}: {error}") from error
    finally:
        partial.unlink(missing_ok=True)
    return BackupResult(target, target.stat().st_size, worlds, len(POSTGRES_MIGRATIONS))


#: Parameters of a URL that libpq (pg_dump) reads as asyncpg does. asyncpg sends any other to the
#: server as a setting, which libpq takes only in ``options`` (``-c NAME=VALUE``).
LIBPQ_PARAMETERS = frozenset({
    "host", "port", "dbname", "user", "passfile", "service", "sslmode", "sslcert", "sslkey", "sslrootcert", "sslcrl",
    "sslpassword", "sslnegotiation", "ssl_min_protocol_version", "ssl_max_protocol_version", "target_session_attrs",
    "krbsrvname", "gsslib", "application_name", "client_encoding", "options",
})


def libpq_target(url: str) -> tuple[str, str | None]:
    """What pg_dump needs to reach the database Troupe (asyncpg) reaches at ``url``: a URL for
    ``--dbname`` without the password, and the password, decoded, for PGPASSWORD (None if the URL has
    none: then pg_dump, as asyncpg, looks at PGPASSWORD and ~/.pgpass).

    asyncpg decodes the user part (``%40`` is ``@``) and reads parameters as a form does (``+`` is a
    space), and what the URL says before its ``?`` wins over a parameter of the same meaning (the
    password in the user part over ``password=``, the host over ``host=``…). libpq decodes the
    same, but lets parameters win and takes ``+`` as it is: so the URL for pg_dump keeps the
    parameters asyncpg heeds, written so that libpq reads the same values.
    """
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    user, _, written = userinfo.partition(":")
    params = dict(parse_qsl(parts.query))  # as asyncpg reads them: blank ones dropped, the last of a name wins
    password = unquote(written) if written else params.get("password") or None
    heeded = {key: value for key, value in params.items() if key in LIBPQ_PARAMETERS}
    if "database" in params and "dbname" not in params:
        heeded["dbname"] = params["database"]
    ignored = {"user"} if user else set()
    if hosts:
        ignored |= {"host", "port"}
    if parts.path:
        ignored.add("dbname")
    settings = [f"-c {key}={_option_escaped(value)}" for key, value in params.items()
                if key not in LIBPQ_PARAMETERS and key not in {"password", "database"}]
    if settings:
        heeded["options"] = " ".join(filter(None, [heeded.get("options", ""), *settings]))
    query = urlencode([(key, value) for key, value in heeded.items() if key not in ignored], quote_via=quote)
    netloc = f"{user}@{hosts}" if user else hosts
    return f"postgresql://{netloc}{parts.path}{'?' if query else ''}{query}", password


def _option_escaped(value: str) -> str:
    """``value`` as one word of libpq's ``options``: backslashes and spaces escaped."""
    return value.replace("\\", "\\\\").replace(" ", "\\ ")
