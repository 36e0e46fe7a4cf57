"""``troupe doctor``: is this installation ready to run? One line per check, and what to do about failures.

Every check is read-only: the database is opened read-only (no migration, no write), the model
gets one tiny completion that bypasses the response cache, Discord and Slack are asked who
the token belongs to. No secret is ever part of a check's text, not even a fragment of one.
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from adapters.doctor import (
    NETWORK_TIMEOUT_S,
    Check,
    check_discord,
    check_slack,
)
from config.settings import (
    DEFAULT_CONFIG_FILE,
    Settings,
    SettingsError,
    config_file,
    read_config_file,
)

#: Shapes of keys and tokens, masked wherever they appear (a server may echo part of a key back).
_SECRET_SHAPES = re.compile(
    r"\b(?:sk-|xox[abpres]-|xapp-)[\w*.\-]{2,}"  # OpenAI keys, Slack tokens (also "sk-ab***yz")
    r"|[\w-]{20,}\.[\w-]{5,}\.[\w-]{20,}"  # Discord bot tokens (three dot-separated parts)
)


async def run_checks(settings: Settings, *, timeout_s: float = NETWORK_TIMEOUT_S) -> list[Check]:
    """Every check, in order: settings, database, model, Discord, Slack."""
    if settings.database_url is not None:
        checks = [check_settings(settings), *await check_shared_database(settings)]
    else:
        checks = [check_settings(settings), await check_database(settings.database_path)]
    checks.append(await check_model(settings, timeout_s=timeout_s))
    checks.append(await check_discord(settings, timeout_s=timeout_s))
    checks.extend(await check_slack(settings, timeout_s=timeout_s))
    secrets = _secret_values(settings)
    return [
        Check(c.name, c.ok, redact(c.detail, secrets), redact(c.fix, secrets)) for c in checks
    ]


# -- settings -------------------------------------------------------------------------------


def check_settings(settings: Settings) -> Check:
    """Where the settings came from: the config file and the names (never values) of TROUPE_ variables."""
    try:
        path = config_file()
    except SettingsError:  # gone since the settings were read
        path = None
    source = f"config file {path}" if path is not None else f"no config file ({DEFAULT_CONFIG_FILE} not found)"
    names = sorted(name for name in os.environ if name.startswith("TROUPE_") and name != "TROUPE_CONFIG")
    env = f"environment: {', '.join(names)}" if names else "no TROUPE_ environment variables"
    unknown = _unknown_keys(path) if path is not None else []
    if unknown:
        return Check("settings", False, f"{path} has keys Troupe does not know: {', '.join(unknown)} "
                     "(they are ignored)", fix="check their spelling against the settings table in README.md")
    return Check("settings", True, f"loaded; {source}; {env}; data in {settings.data_dir}")


def _unknown_keys(path: Path) -> list[str]:
    """Keys of the config file that match no setting (a misspelt ``modle:`` is otherwise silently ignored)."""
    try:
        data = read_config_file(path)
    except SettingsError:
        return []  # reading it already failed loudly when the settings were loaded
    found: list[str] = []

    def walk(values: Any, model: type[BaseModel], prefix: str) -> None:
        if not isinstance(values, dict):
            return
        for key, value in values.items():
            field = model.model_fields.get(str(key))
            if field is None:
                found.append(f"{prefix}{key}")
            elif isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
                walk(value, field.annotation, f"{prefix}{key}.")

    walk(data, Settings, "")
    return found


# -- database -------------------------------------------------------------------------------


async def check_database(path: Path) -> Check:
    return await asyncio.to_thread(_check_database, Path(path))


def _check_database(path: Path) -> Check:
    from bots.storage import StorageError
    from bots.storage.sqlite import (
        ExplainedStorageError,
        connect_read_only,
        damaged_problem,
        not_writable_problem,
        unwritable_place,
    )

    if path.is_dir():
        return Check("database", False, f"{path} is a folder, not a database file",
                     f"point TROUPE_BOT_DATABASE to a file, e.g. {path / 'troupe.db'}")
    place = unwritable_place(path)
    if not path.exists():
        if place is not None:
            return Check(
                "database", False, f"no database at {path}, and {place} is not writable",
                f"make {place} writable for this user, or point TROUPE_DATA_DIR (or TROUPE_BOT_DATABASE) elsewhere",
            )
        return Check("database", None, f"no database at {path} yet: it is created when the bot first starts")
    try:
        db = connect_read_only(path, timeout=5)
    except ExplainedStorageError as error:
        return Check("database", False, error.problem.detail, error.problem.fix)
    except StorageError as error:
        return Check("database", False, f"cannot open {path}: {error}",
                     "check the file's permissions, or restore a backup (docs/configuration.md)")
    try:
        found = _inspect(db, path)
    except sqlite3.DatabaseError as error:
        problem = damaged_problem(path, error)
        return Check("database", False, problem.detail, problem.fix)
    finally:
        db.close()
    if found.ok and place is not None:
        # Readable, but the bot could not run on it: SQLite writes beside the file, and the file itself.
        problem = not_writable_problem(path, place)
        return Check("database", False, f"{found.detail}; but {problem.detail}", problem.fix)
    return found


async def check_shared_database(settings: Settings) -> list[Check]:
    """The PostgreSQL database: reachable and of this Troupe's schema; then the workers running on
    it now, the channels each runs, and channels with a world that nobody runs."""
    from bots.storage import StorageError
    from bots.storage.base import ExplainedStorageError
    from bots.storage.postgres import PostgresStorage

    assert settings.database_url is not None
    # A check says what it finds now: a server that goes away meanwhile is not waited for.
    storage = PostgresStorage(settings.database_url.get_secret_value(), read_only=True, max_connections=2,
                              reconnect_s=0)
    try:
        await storage.open()
    except StorageError as error:
        if "holds no Troupe tables yet" in str(error):
            moving = await asyncio.to_thread(_sqlite_worlds, settings.database_path)
            return [Check("database", None, _fresh_database(storage.shown_url, settings.database_path, moving))]
        if isinstance(error, ExplainedStorageError):  # what to change is known: grants, the password, the database
            return [Check("database", False, error.problem.detail, error.problem.fix)]
        return [Check("database", False, str(error),
                      "check TROUPE_DATABASE_URL, that the server runs and accepts this user")]
    try:
        # Read-only here, but a worker on this database writes: a user who may only read is told now.
        await storage.check_writes()
        worlds = await storage.active_worlds()
        # Alive by each worker's own lease term, as it recorded it: not this process's TROUPE_LEASE_S.
        workers = await storage.workers()
        leases = [lease for lease in await storage.leases() if lease.worker and not lease.expired]
    except ExplainedStorageError as error:
        return [Check("database", False, error.problem.detail, error.problem.fix)]
    except StorageError as error:
        return [Check("database", False, str(error), "check that the server runs and accepts this user")]
    finally:
        await storage.close()
    database = Check("database", True, f"PostgreSQL at {storage.shown_url}: {len(worlds)} channel(s) with a world")
    owned: dict[str, list[str]] = {}
    for lease in leases:
        owned.setdefault(lease.worker, []).append(lease.channel_key)
    lines = [f"{w.id} on {w.host} (pid {w.pid}, since {w.started_at:%Y-%m-%d %H:%M} UTC, lease {w.lease_s:g} s): "
             + (", ".join(sorted(owned.get(w.id, []))) or "no channels") for w in workers]
    orphans = sorted({w.channel_key for w in worlds} - {lease.channel_key for lease in leases})
    if not workers:
        return [database, Check("workers", None, "no Troupe worker runs on this database now")]
    detail = f"{len(workers)} running: " + "; ".join(lines)
    if orphans:
        # Each worker looks for channels nobody runs every third of its own lease term.
        within = max(w.lease_s for w in workers)
        return [database, Check("workers", False, f"{detail}; nobody runs {', '.join(orphans)}",
                                f"a running worker takes these over within {within:g} s; if they stay, "
                                "check the workers' logs")]
    return [database, Check("workers", True, detail)]


def _fresh_database(shown_url: str, sqlite: Path, worlds: int) -> str:
    """What to do with a PostgreSQL database Troupe never opened. ``troupe migrate --to`` fills only an
    empty one: a state to bring from SQLite moves first, before any start (a console makes a world)."""
    move = ("`troupe migrate --to \"$TROUPE_DATABASE_URL\"` before starting Troupe on it (the move fills only a "
            "database no bot or console has run on)")
    if worlds:
        return (f"PostgreSQL at {shown_url} holds no Troupe tables yet, and {sqlite} holds {worlds} "
                f"world{'s' if worlds != 1 else ''}: to bring them, run {move}; to start afresh, `troupe serve` sets "
                "the tables up at its first start")
    return (f"PostgreSQL at {shown_url} holds no Troupe tables yet: `troupe serve` sets them up at its first start. "
            f"To bring the worlds of a SQLite database, run {move}")


def _sqlite_worlds(path: Path) -> int:
    """How many worlds the SQLite database at ``path`` holds: 0 if there is none, or it holds none
    (the response cache alone), or cannot be read."""
    from bots.storage import StorageError
    from bots.storage.sqlite import connect_read_only

    if not path.is_file():
        return 0
    try:
        db = connect_read_only(path, timeout=5)
        try:
            return int(db.execute("SELECT count(*) FROM worlds").fetchone()[0])
        finally:
            db.close()
    except (sqlite3.Error, StorageError):  # not a Troupe database, or not readable: nothing to bring
        return 0


def _inspect(db: sqlite3.Connection, path: Path) -> Check:
    from bots.storage.sqlite import MIGRATIONS, schema_problem

    latest = len(MIGRATIONS)
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    problem = schema_problem(path, version, tables)
    if problem is not None:
        return Check("database", False, problem.detail, problem.fix)
    problems = [row[0] for row in db.execute("PRAGMA integrity_check(5)")]
    if problems != ["ok"]:
        return Check(
            "database", False, f"{path} is damaged: {'; '.join(problems)}",
            "stop the bot and restore the latest backup (docs/configuration.md, “Backup and restore”)",
        )
    if version < latest:
        schema = f"schema version {version} of {latest} (the bot upgrades it when it starts; back it up first)"
    else:
        schema = f"schema version {version} (latest)"
    parts = [schema, "integrity ok"]
    if "worlds" in tables:
        by_status = dict(db.execute("SELECT status, count(*) FROM worlds GROUP BY status").fetchall())
        total = sum(by_status.values())
        running = total - by_status.get("stopped", 0)
        parts.append(f"{total} world{'s' if total != 1 else ''} ({running} running)")
    if "outbox" in tables:
        pending = db.execute("SELECT count(*) FROM outbox WHERE status = 'pending'").fetchone()[0]
        parts.append(f"{pending} pending outbox entr{'ies' if pending != 1 else 'y'}")
    return Check("database", True, f"{path}: {', '.join(parts)}")


# -- model ----------------------------------------------------------------------------------


async def check_model(settings: Settings, *, timeout_s: float = NETWORK_TIMEOUT_S) -> Check:
    """One tiny completion against the configured model, straight to the server (no cache, no retries)."""
    from simulation.llm.base import ChatRequest, Message
    from simulation.llm.errors import (
        AuthenticationFailedError,
        LLMError,
        ModelConfigurationError,
        ModelConnectionError,
        ModelTimeoutError,
    )
    from simulation.llm.factory import DEMO_HINT
    from simulation.llm.openai_model import OpenAIModel

    llm = settings.llm
    if llm.resolved_provider == "demo":
        return Check("model", True, f"offline demo model (no language model is called); for a real one, {DEMO_HINT}")
    timeout = min(llm.timeout_s, timeout_s)
    try:
        model = OpenAIModel.from_settings(llm.model_copy(update={"timeout_s": timeout, "concurrency": 1}))
    except ModelConfigurationError as error:
        return Check("model", False, str(error), "see README, “Using a real model”")
    model.capabilities.configured_context_tokens = llm.context_tokens
    where = model.endpoint
    request = ChatRequest(messages=[Message(role="user", content="Reply with the word OK.")], max_tokens=16)
    started = time.perf_counter()
    try:  # the model's connections are closed whatever the outcome (an unclosed one is warned about)
        try:
            await asyncio.wait_for(model.complete(request), timeout + 1)
        except AuthenticationFailedError as error:
            what = "rejected" if error.status == 401 else "refused (no access)"
            return Check("model", False, f"{where}: the API key was {what} (HTTP {error.status})",
                         "the API key was rejected: check TROUPE_LLM_API_KEY")
        except ModelConnectionError:
            return Check("model", False, f"could not reach the model server at {where}",
                         "check that the server is running and TROUPE_LLM_BASE_URL (or TROUPE_LLM_AZURE_ENDPOINT) is "
                         "right")
        except (TimeoutError, ModelTimeoutError):
            return Check("model", False, f"{where} did not answer within {timeout:g}s",
                         "check that the server is up and not overloaded; a local model may still be loading")
        except LLMError as error:
            return Check("model", False, f"model {model.name} at {where}: {error}",
                         "check TROUPE_LLM_MODEL and TROUPE_LLM_BASE_URL")
        latency = time.perf_counter() - started
        structured, context = await _server_profile(model, settings, timeout)
    finally:
        await model.aclose()
    return Check("model", True, f"model {model.name} at {where} answered in {latency:.2f}s; {structured}; {context}")


if TYPE_CHECKING:
    from simulation.llm.openai_model import OpenAIModel


class _Probe(BaseModel):
    """The smallest shape a structured call can ask for: enough to walk the discovery ladder."""

    ok: bool


async def _server_profile(model: OpenAIModel, settings: Settings, timeout: float) -> tuple[str, str]:
    """Discover, afresh, how the server takes a request for JSON and how large its context window
    is; remember both for the bot and ``troupe simulate``. Returns the two lines to show."""
    from simulation.llm.base import ChatRequest, Message
    from simulation.llm.capabilities import SqliteProfileStore
    from simulation.llm.errors import LLMError, StructuredOutputError

    capabilities = model.capabilities
    request = ChatRequest(
        messages=[Message(role="user", content='Is the sky blue on a clear day? Answer as {"ok": true} or {"ok": false}.')],
        max_tokens=64,
    )
    try:
        await asyncio.wait_for(model.structured(request, _Probe), timeout + 1)
    except StructuredOutputError:
        mode = "structured output: the model gave no valid JSON (personas may answer in words only)"
    except (TimeoutError, LLMError) as error:
        mode = f"structured output: not detected ({error or 'no answer in time'})"
    else:
        refused = capabilities.refusals
        mode = f"structured output: {capabilities.structured_mode.describe()}" + (
            f" ({refused} form{'s' if refused != 1 else ''} refused)" if refused else ""
        )
    window = capabilities.learned_context_tokens
    configured = capabilities.configured_context_tokens
    if window:
        context = f"context window {window:,} tokens"
        if configured and configured < window:
            context += f" (prompts capped at {configured:,} by TROUPE_LLM_CONTEXT_TOKENS)"
    elif configured:
        context = f"context window {configured:,} tokens (TROUPE_LLM_CONTEXT_TOKENS)"
    else:
        context = "context window not reported by the server (set TROUPE_LLM_CONTEXT_TOKENS to its size)"
    path = settings.llm_cache_path
    if capabilities.key and path.exists():
        await SqliteProfileStore(path).save_model_profile(capabilities.key, capabilities.profile().model_dump(mode="json"))
    return mode, context


# -- secrets --------------------------------------------------------------------------------


def _secret(value: Any) -> str | None:
    if value is None:
        return None
    text = value.get_secret_value().strip()
    return text or None


def _secret_values(settings: Settings) -> list[str]:
    values = [settings.llm.api_key, settings.discord.token, settings.slack.bot_token,
              settings.slack.app_token, settings.slack.signing_secret, settings.slack.client_secret]
    return [s for s in (_secret(v) for v in values) if s is not None]


def redact(text: str, secrets: list[str] = ()) -> str:
    """``text`` with every configured secret, and anything shaped like a key or token, masked."""
    for secret in sorted(secrets, key=len, reverse=True):
        # Short values are placeholders ("ollama"), not secrets: masking them would mangle URLs.
        if len(secret) < 8:
            continue
        text = text.replace(secret, "[secret]")
        # Fragments a server may echo back ("sk-ab...yz"), for secrets long enough to have them.
        if len(secret) >= 16:
            for fragment in (secret[:8], secret[-6:]):
                text = text.replace(fragment, "[secret]")
    return _SECRET_SHAPES.sub("[secret]", text)
