"""Reaching the server: the URL as it may be shown, a pool of connections, what a failure to connect
means and what to do about it, and the schema brought up to date by one process at a time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Iterator
from urllib.parse import parse_qsl, unquote, unquote_plus, urlencode, urlsplit, urlunsplit

import asyncpg

import bots.storage.postgres.schema as schema
from bots.storage.base import DatabaseProblem, DatabaseSetupError, ExplainedStorageError, StorageError
from bots.storage.postgres.statements import HAS_VERSION_TABLE, RECORD_VERSION, SCHEMA_VERSION

log = logging.getLogger(__name__)

SCHEMES = ("postgresql", "postgres")
#: The advisory lock every process takes while it migrates the schema, so only one does at a time.
MIGRATION_LOCK = 0x74726F7570650001
#: Seconds to wait for the server to accept a connection.
CONNECT_TIMEOUT_S = 10.0


def is_postgres_url(url: str) -> bool:
    return urlsplit(url).scheme in SCHEMES


def shown_url(url: str) -> str:
    """``url`` as it may be logged or printed: without its password (in the user part or as a
    ``password`` parameter)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, hosts = netloc.rsplit("@", 1)
        netloc = f"{user.split(':', 1)[0]}@{hosts}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "password"])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def hidden(text: str, url: str) -> str:
    """``text`` (an error message) with the URL's password, should it appear, blotted out: the one in
    the user part and any ``password`` parameter, each as written in the URL and decoded."""
    parts = urlsplit(url)
    secrets = {parts.password or "", unquote(parts.password or "")}
    for pair in parts.query.split("&"):
        key, _, value = pair.partition("=")
        if unquote_plus(key) == "password":
            secrets |= {value, unquote_plus(value)}
    for secret in sorted(filter(None, secrets), key=len, reverse=True):  # the longest first: it may hold another
        text = text.replace(secret, "***")
    return text


def connection_problem(url: str, error: BaseException) -> DatabaseProblem:
    """What keeps Troupe from connecting to the server at ``url``, and what to check."""
    where = f"the PostgreSQL server at {shown_url(url)}"
    said = hidden(str(error) or type(error).__name__, url)
    if isinstance(error, asyncpg.InvalidPasswordError):
        return DatabaseProblem(f"{where} refused the password ({said})",
                               "check the user name and password in TROUPE_DATABASE_URL")
    if isinstance(error, asyncpg.InvalidAuthorizationSpecificationError):
        return DatabaseProblem(f"{where} refused the connection ({said})",
                               "check the user name in TROUPE_DATABASE_URL, and that the server's pg_hba.conf "
                               "lets this user connect from this machine")
    if lacks_privilege(error):
        return DatabaseProblem(f"{where} does not let this user connect to the database ({said})",
                               "grant the user CONNECT on the database (GRANT CONNECT ON DATABASE …), or fix the "
                               "user name in TROUPE_DATABASE_URL")
    if isinstance(error, asyncpg.InvalidCatalogNameError):
        return DatabaseProblem(f"{where} has no such database ({said})",
                               "create it (CREATE DATABASE, or createdb) or fix the database name at the end of "
                               "TROUPE_DATABASE_URL")
    if isinstance(error, asyncpg.TooManyConnectionsError | asyncpg.CannotConnectNowError):
        return DatabaseProblem(f"{where} accepts no connection now ({said})",
                               "wait until it has started (or has fewer clients), then start again")
    if isinstance(error, socket.gaierror):
        return DatabaseProblem(f"the host of {shown_url(url)} is unknown ({said})",
                               "check the host name in TROUPE_DATABASE_URL")
    if isinstance(error, ConnectionRefusedError):
        return DatabaseProblem(f"{where} refused the connection: nothing listens there",
                               "check that the server is running, and the host and port in TROUPE_DATABASE_URL")
    if isinstance(error, TimeoutError):
        return DatabaseProblem(f"{where} did not answer in time",
                               "check that the server is running, the host and port in TROUPE_DATABASE_URL, and "
                               "that no firewall is in the way")
    if isinstance(error, ssl.SSLError):
        return DatabaseProblem(f"the TLS connection to {where} failed ({said})",
                               "check the sslmode in TROUPE_DATABASE_URL and the server's certificate")
    if isinstance(error, asyncpg.ClientConfigurationError | ValueError):
        return DatabaseProblem(f"TROUPE_DATABASE_URL ({shown_url(url)}) cannot be used ({said})",
                               "write it as postgresql://USER:PASSWORD@HOST:PORT/DATABASE")
    return DatabaseProblem(f"cannot connect to {where} ({said})",
                           "check that the server is running and TROUPE_DATABASE_URL")


#: Errors that mean the connection to the server is gone (or never came), not that a statement failed.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
)

#: Server errors after which no write succeeds until someone acts, and what to do.
UNUSABLE: tuple[tuple[type[asyncpg.PostgresError], str], ...] = (
    (asyncpg.DiskFullError, "the server's disk is full: free some space there, then start again"),
    (asyncpg.ReadOnlySQLTransactionError,
     "it accepts no writes (a standby, or a read-only database): point TROUPE_DATABASE_URL at the primary"),
    (asyncpg.InsufficientPrivilegeError,
     "the user lacks a privilege on Troupe's tables: grant it (or connect as their owner), then start again"),
    (asyncpg.DataCorruptedError, "its data is damaged: restore the latest backup"),
    (asyncpg.IndexCorruptedError, "an index is damaged: REINDEX it, or restore the latest backup"),
    (asyncpg.InvalidCatalogNameError, "the database is gone: restore it, or fix TROUPE_DATABASE_URL"),
    (asyncpg.InvalidAuthorizationSpecificationError, "it refuses the user now: check TROUPE_DATABASE_URL"),
)


#: Of the UNUSABLE errors, those that the user's grants or the setting must fix, not the data.
SETUP_KINDS: tuple[type[asyncpg.PostgresError], ...] = (
    asyncpg.InsufficientPrivilegeError,
    asyncpg.ReadOnlySQLTransactionError,
    asyncpg.InvalidCatalogNameError,
    asyncpg.InvalidAuthorizationSpecificationError,
)


def _is(error: BaseException, kind: type[asyncpg.PostgresError]) -> bool:
    """Whether ``error`` is the server's error ``kind``: of its class, or of its SQLSTATE (asyncpg's
    class for the code may be a subclass, or a plain PostgresError)."""
    return isinstance(error, kind) or getattr(error, "sqlstate", None) == kind.sqlstate


def lacks_privilege(error: BaseException) -> bool:
    """Whether ``error`` is the server's "permission denied" (SQLSTATE 42501, insufficient_privilege)."""
    return _is(error, asyncpg.InsufficientPrivilegeError)


def unusable_advice(error: BaseException) -> str | None:
    """What to do, if ``error`` means that no write will succeed until someone acts; else None."""
    for kind, advice in UNUSABLE:
        if _is(error, kind):
            return advice
    return None


def statement_failure(url: str, error: asyncpg.PostgresError, what: str) -> StorageError:
    """``error``, met while trying to ``what`` on the database at ``url``, as the error to raise: a
    DatabaseSetupError with what to do when the user's grants or the setting must change (the user lacks
    a privilege, the database takes no writes), an ExplainedStorageError when nothing will succeed until
    someone acts (a full disk, damaged data), else a StorageError."""
    problem = DatabaseProblem(f"could not {what}: {hidden(str(error) or type(error).__name__, url)}",
                              unusable_advice(error) or "")
    if not problem.fix:
        return StorageError(problem.detail)
    if any(_is(error, kind) for kind in SETUP_KINDS):
        return DatabaseSetupError(problem)
    return ExplainedStorageError(problem)


@contextlib.contextmanager
def explained(url: str, what: str) -> Iterator[None]:
    """Statements run on ``url`` in this block that the server refuses raise ``statement_failure``; a
    lost connection (CONNECTION_ERRORS) is left to the caller, which says what it means."""
    try:
        yield
    except CONNECTION_ERRORS:
        raise
    except asyncpg.PostgresError as error:
        raise statement_failure(url, error, what) from error


async def _keep_session(connection: asyncpg.Connection) -> None:
    """What a connection going back to the pool needs beyond asyncpg's own rollback of a transaction
    left open: nothing. Pooled connections never LISTEN, take session locks, open cursors or SET
    anything, so the default reset (``RESET ALL``, ``UNLISTEN *``, …) would be one more round trip a
    statement for no effect."""


async def create_pool(url: str, *, min_size: int, max_size: int, command_timeout_s: float,
                      read_only: bool) -> asyncpg.Pool:
    """A pool of connections to ``url``; DatabaseSetupError or StorageError says why there is none."""
    settings = {"application_name": "troupe"}
    if read_only:
        settings["default_transaction_read_only"] = "on"
    try:
        return await asyncpg.create_pool(
            url, min_size=min_size, max_size=max_size, command_timeout=command_timeout_s,
            timeout=CONNECT_TIMEOUT_S, server_settings=settings, reset=_keep_session,
        )
    except (*CONNECTION_ERRORS, asyncpg.PostgresError, ValueError) as error:
        problem = connection_problem(url, error)
        setup = lacks_privilege(error) or isinstance(
            error, asyncpg.InvalidAuthorizationSpecificationError | asyncpg.InvalidCatalogNameError | socket.gaierror
            | ValueError | asyncpg.ClientConfigurationError | ssl.SSLError)
        failure = DatabaseSetupError(problem) if setup else StorageError(str(problem))
        raise failure from None


async def schema_version(connection: asyncpg.Connection) -> int:
    if not await connection.fetchval(HAS_VERSION_TABLE):
        return 0
    return int(await connection.fetchval(SCHEMA_VERSION))


async def first_schema_version(connection: asyncpg.Connection, url: str) -> int:
    """The schema version, read with the user of ``url``: the first statements Troupe runs in the
    database, so where a user without the grants it needs is told so (DatabaseSetupError)."""
    with explained(url, f"read the schema version of the database {shown_url(url)}"):
        version = await schema_version(connection)
        # No version table in sight may mean none in a schema the user may use, not none at all.
        if version == 0 and await connection.fetchval("SELECT current_schema()") is None:
            path = await connection.fetchval("SHOW search_path")
            raise DatabaseSetupError(DatabaseProblem(
                f"the user of {shown_url(url)} may use no schema of its search_path ({path}), so it can neither "
                "find Troupe's tables nor create them",
                "grant it USAGE (and, to set the database up, CREATE) on the schema (GRANT USAGE ON SCHEMA public "
                "TO …), or connect as the database's owner, then start again",
            ))
    return version


#: (table, privilege) pairs the user lacks, of those asked about, for Troupe's tables as the search path finds them.
MISSING_PRIVILEGES = """
SELECT t.name, t.privilege FROM unnest($1::text[], $2::text[]) AS t(name, privilege)
WHERE to_regclass(t.name) IS NOT NULL AND NOT has_table_privilege(to_regclass(t.name), t.privilege)
"""


async def refuse_missing_writes(connection: asyncpg.Connection, url: str) -> None:
    """DatabaseSetupError, naming each table and the grant it needs, when the user of ``url`` may
    not write what a worker writes: found now rather than at the first write of a conversation."""
    pairs = [(table, privilege) for table, privileges in schema.PRIVILEGES_NEEDED.items() for privilege in privileges]
    with explained(url, f"check the user's privileges on the database {shown_url(url)}"):
        rows = await connection.fetch(MISSING_PRIVILEGES, [t for t, _ in pairs], [p for _, p in pairs])
    if not rows:
        return
    lacking: dict[str, list[str]] = {}
    for row in rows:
        lacking.setdefault(row["name"], []).append(row["privilege"])
    # Tables that lack the same privileges go in one grant: one line to paste for the usual case.
    by_privileges: dict[tuple[str, ...], list[str]] = {}
    for table, privileges in lacking.items():
        by_privileges.setdefault(tuple(privileges), []).append(table)
    user = str(await connection.fetchval("SELECT current_user")).replace('"', '""')
    said = "; ".join(f"{', '.join(p)} on {', '.join(t)}" for p, t in by_privileges.items())
    grants = " ".join(f'GRANT {", ".join(p)} ON {", ".join(t)} TO "{user}";' for p, t in by_privileges.items())
    raise DatabaseSetupError(DatabaseProblem(
        f"the user of {shown_url(url)} lacks {said}, which a worker needs to write",
        f"grant them as the tables' owner ({grants}), or connect as the owner, then start again "
        "(`troupe doctor` and `troupe export` need only SELECT)",
    ))


def newer_schema_problem(url: str, version: int) -> DatabaseProblem:
    return DatabaseProblem(
        f"the database {shown_url(url)} has schema version {version}, newer than this Troupe knows (up to "
        f"{len(schema.MIGRATIONS)}): it was written by a newer Troupe",
        "upgrade Troupe to use it, or restore a backup made with this version",
    )


async def migrate(connection: asyncpg.Connection, url: str) -> None:
    """Apply the migrations the database lacks, each in one transaction.

    Every process that opens the database does this at once, so each migration takes an advisory
    lock first and looks again: the first one applies it, the others find it done.
    """
    latest = len(schema.MIGRATIONS)
    version = await first_schema_version(connection, url)
    if version > latest:
        raise DatabaseSetupError(newer_schema_problem(url, version))
    for number, script in enumerate(schema.MIGRATIONS, start=1):
        if number <= version:
            continue
        try:
            async with connection.transaction():
                await connection.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
                await connection.execute(schema.VERSION_TABLE)
                version = await schema_version(connection)
                if version > latest:
                    raise DatabaseSetupError(newer_schema_problem(url, version))
                if version >= number:
                    continue
                await connection.execute(script)
                await connection.execute(RECORD_VERSION, number)
        except asyncpg.PostgresError as error:
            raise statement_failure(url, error, f"upgrade the database {shown_url(url)} to schema version {number} "
                                                f"of {latest}") from error
        version = number
        log.info("database %s upgraded to schema version %d", shown_url(url), number)


async def refuse_outdated(connection: asyncpg.Connection, url: str) -> None:
    """For a reader that may not migrate: the schema must be this Troupe's, neither older nor newer."""
    version, latest = await first_schema_version(connection, url), len(schema.MIGRATIONS)
    if version > latest:
        raise DatabaseSetupError(newer_schema_problem(url, version))
    if version < latest:
        state = "holds no Troupe tables yet" if version == 0 else f"has schema version {version} of {latest}"
        raise DatabaseSetupError(f"the database {shown_url(url)} {state}: start Troupe on it once (`troupe serve` "
                                 "or `troupe console`) to set it up, then try again")


async def close_quietly(pool: asyncpg.Pool, timeout: float = 10.0) -> None:
    """Close the pool, or drop its connections if the server is gone and closing would wait."""
    try:
        await asyncio.wait_for(pool.close(), timeout)
    except (*CONNECTION_ERRORS, asyncpg.PostgresError) as error:
        log.warning("closing the database connections: %s", error)
        pool.terminate()
