"""Reaching the server: the URL as it may be shown, a pool of connections, what a failure to connect
means and what to do about it, and the schema brought up to date by one process at a time."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

import bots.storage.postgres.schema as schema
from bots.storage.base import DatabaseProblem, DatabaseSetupError, StorageError
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
    """``text`` (an error message) with the URL's password, should it appear, blotted out."""
    password = urlsplit(url).password
    for key, value in parse_qsl(urlsplit(url).query):
        if key == "password":
            password = value
    return text.replace(password, "***") if password else text


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


def unusable_advice(error: BaseException) -> str | None:
    """What to do, if ``error`` means that no write will succeed until someone acts; else None."""
    for kind, advice in UNUSABLE:
        if isinstance(error, kind):
            return advice
    return None


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
        setup = isinstance(error, asyncpg.InvalidAuthorizationSpecificationError | asyncpg.InvalidCatalogNameError
                           | socket.gaierror | ValueError | asyncpg.ClientConfigurationError | ssl.SSLError)
        failure = DatabaseSetupError(problem) if setup else StorageError(str(problem))
        raise failure from None


async def schema_version(connection: asyncpg.Connection) -> int:
    if not await connection.fetchval(HAS_VERSION_TABLE):
        return 0
    return int(await connection.fetchval(SCHEMA_VERSION))


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
    version = await schema_version(connection)
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
            raise StorageError(f"could not upgrade the database {shown_url(url)} to schema version {number} of "
                               f"{latest}: {hidden(str(error), url)}") from error
        version = number
        log.info("database %s upgraded to schema version %d", shown_url(url), number)


async def refuse_outdated(connection: asyncpg.Connection, url: str) -> None:
    """For a reader that may not migrate: the schema must be this Troupe's, neither older nor newer."""
    version, latest = await schema_version(connection), len(schema.MIGRATIONS)
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
