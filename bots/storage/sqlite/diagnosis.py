"""What can be wrong with a database file, and what to do about it.

Each problem is said once, here, for everyone who meets it: the store refusing to open a file,
``troupe doctor`` checking one, a backup or an export reading one.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

import bots.storage.sqlite.schema as schema
from bots.storage.base import DatabaseProblem, DatabaseSetupError, ExplainedStorageError, StorageError


class DatabaseInUseError(DatabaseSetupError):
    """Another Troupe process runs the worlds of this database."""


class DatabaseNotWritableError(DatabaseSetupError):
    """This user may not write the database file, or the folder SQLite keeps its journal in."""


class NotATroupeDatabaseError(DatabaseSetupError):
    """The file is another program's SQLite database: adopting it would write Troupe's tables into it."""


class DatabaseDamagedError(ExplainedStorageError):
    """The file is damaged (or not SQLite at all): only a backup brings its data back."""


def sqlite_code(error: BaseException) -> int | None:
    """SQLite's primary result code of ``error`` (``SQLITE_READONLY`` for ``SQLITE_READONLY_DIRECTORY``)."""
    code = getattr(error, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def sqlite_cause(error: BaseException) -> sqlite3.Error | None:
    """The SQLite error behind ``error``: itself, or the first one in its chain of causes."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, sqlite3.Error):
            return seen
        seen = seen.__cause__
    return None


def unwritable_place(path: Path) -> Path | None:
    """The file or folder that keeps this user from writing the database at ``path``, or None.

    SQLite writes the ``-wal`` and ``-shm`` files beside the database, and Troupe its lock file, so
    the folder must be writable too; a database not created yet needs its nearest existing folder.
    """
    if path.exists():
        beside = [path, *(path.with_name(path.name + end) for end in ("-wal", "-shm", ".lock"))]
        for place in beside:
            if place.exists() and not os.access(place, os.W_OK):
                return place
        folder = path.parent
    else:
        folder = next((p for p in path.parents if p.exists()), Path("."))
    return None if os.access(folder, os.W_OK | os.X_OK) else folder


def not_writable_problem(path: Path, place: Path) -> DatabaseProblem:
    if place == path:
        detail = f"the database {path} is not writable for this user"
    else:
        what = "folder" if place.is_dir() else "file"
        detail = f"the {what} {place} is not writable for this user, so Troupe cannot write its database {path}"
    return DatabaseProblem(
        detail,
        f"make it writable for the user running Troupe (chmod u+w {place}, or chown), "
        "or point TROUPE_DATA_DIR (or TROUPE_BOT_DATABASE) elsewhere",
    )


def not_writable_error(path: Path) -> DatabaseNotWritableError | None:
    """The error saying which file or folder keeps this user from writing the database, if one does."""
    place = unwritable_place(path)
    return DatabaseNotWritableError(not_writable_problem(path, place)) if place is not None else None


def damaged_problem(path: Path, error: BaseException) -> DatabaseProblem:
    if sqlite_code(error) == sqlite3.SQLITE_NOTADB:
        detail = f"{path} is not a usable SQLite database ({error})"
    else:
        detail = f"the database {path} is damaged ({error})"
    return DatabaseProblem(detail,
                           "run `troupe doctor`; restore a backup (docs/configuration.md, “Backup and restore”)")


def newer_schema_problem(path: Path, version: int) -> DatabaseProblem:
    return DatabaseProblem(
        f"the database {path} has schema version {version}, newer than this Troupe knows (up to "
        f"{len(schema.MIGRATIONS)}): it was written by a newer Troupe",
        "upgrade Troupe to use it, or restore a backup made with this version",
    )


def schema_problem(path: Path, version: int, tables: Iterable[str]) -> DatabaseProblem | None:
    """Why the file at ``path``, with this ``user_version`` and these tables, is no Troupe database
    this Troupe may open (and migrate), or None.

    A fresh file holds no tables but the response cache's; a Troupe database holds every table its
    schema version created and none of a later version's (which its upgrade would create again).
    """
    if version > len(schema.MIGRATIONS):
        return newer_schema_problem(path, version)
    found = {t for t in tables if not t.startswith("sqlite_")}
    created = [schema.created_tables(script) for script in schema.MIGRATIONS]
    if version == 0:
        unexpected, missing = found - schema.SHARED_TABLES, set()
    else:
        unexpected, missing = set().union(*created[version:]) & found, set().union(*created[:version]) - found
    reasons = [f"{what} {', '.join(sorted(names))}"
               for what, names in (("it has tables", unexpected), ("it lacks tables", missing)) if names]
    if not reasons:
        return None
    if version:
        reasons.insert(0, f"schema version {version}")
    return DatabaseProblem(
        f"{path} is not a Troupe database ({'; '.join(reasons)})",
        "point TROUPE_BOT_DATABASE (or TROUPE_DATA_DIR) elsewhere; Troupe changes nothing in it",
    )


def storage_failure(path: Path, error: BaseException, doing: str) -> StorageError:
    """``error`` (SQLite's, or a StorageError caused by one) as the StorageError that says what to
    do: a damaged file, a full disk and a read-only place each have their own message."""
    if isinstance(error, ExplainedStorageError):
        return error
    cause = sqlite_cause(error)
    code = sqlite_code(cause) if cause is not None else None
    failure: StorageError
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        failure = DatabaseDamagedError(damaged_problem(path, cause))
    elif code == sqlite3.SQLITE_FULL:
        failure = StorageError(f"the disk holding {path} is full ({cause}): free some space there, then start again")
    elif code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM) and (
        refused := not_writable_error(path)
    ) is not None:
        failure = refused
    elif isinstance(error, StorageError):
        return error
    else:
        failure = StorageError(f"could not {doing} {path}: {error}")
    failure.__cause__ = cause or error
    return failure


#: SQLite's primary result codes that mean no write will succeed until someone acts, and what to do.
_UNUSABLE = {
    sqlite3.SQLITE_FULL: "the disk is full: free some space, then start again",
    sqlite3.SQLITE_READONLY: "it cannot be written (a read-only file or folder): fix its permissions, then start again",
    sqlite3.SQLITE_CORRUPT: "it is damaged: run `troupe doctor`, then restore the latest backup (docs/configuration.md)",
    sqlite3.SQLITE_NOTADB: "it is damaged: run `troupe doctor`, then restore the latest backup (docs/configuration.md)",
    sqlite3.SQLITE_IOERR: "the disk could not be read or written: check it, then start again",
    sqlite3.SQLITE_CANTOPEN: "the file could not be opened: check that it and its folder exist and are writable",
}


def unusable_cause(error: BaseException) -> tuple[sqlite3.Error, str] | None:
    """The SQLite error behind ``error`` and what to do, if it means the database is unusable (a
    full disk, a read-only or damaged file), which no retry mends; else None."""
    cause = sqlite_cause(error)
    advice = _UNUSABLE.get(sqlite_code(cause)) if cause is not None else None
    return None if advice is None else (cause, advice)
