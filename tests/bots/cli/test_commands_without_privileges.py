"""Every command, run with a PostgreSQL user that lacks the grants on Troupe's tables (a second role,
not their owner): one line that says what to grant, and no traceback. ``troupe doctor`` shows it as
its ✗ database check."""

from __future__ import annotations

import asyncio

import pytest

from bots.cli import main
from bots.storage.postgres import PostgresStorage
from bots.storage.sqlite import SQLiteStorage
from tests.support.cli import troupe
from tests.support.postgres import PASSWORD, create_database
from tests.support.roles import create_role, url_as

SECRET = "role-pass-word"
ADVICE = "the user lacks a privilege on Troupe's tables: grant it (or connect as their owner), then start again"


@pytest.fixture
async def unprivileged_url(postgres_server) -> str:
    """A database with Troupe's tables, set up by its owner; the URL of a user with no grant on them."""
    owner = await create_database(postgres_server)
    async with PostgresStorage(owner):
        pass
    return url_as(owner, await create_role(postgres_server, SECRET), SECRET)


async def test_doctor_shows_the_missing_grant_as_a_failed_check_without_a_traceback(tmp_path, unprivileged_url):
    code, out, err = await troupe("doctor", env={"TROUPE_DATA_DIR": str(tmp_path / "data"),
                                                 "TROUPE_DATABASE_URL": unprivileged_url}, cwd=tmp_path)
    assert code == 1, out + err
    lines = out.splitlines()
    [at] = [n for n, line in enumerate(lines) if line.startswith(("✗ database", "✓ database"))]
    database, fix = lines[at], " ".join(lines[at + 1].split())
    assert database.startswith("✗ database") and "permission denied for table schema_migrations" in database
    assert fix.startswith("fix:") and ADVICE in fix, "the advice is the fix, not a generic one"
    assert "Traceback" not in out + err and "asyncpg.exceptions" not in out + err
    assert SECRET not in out + err and PASSWORD not in out + err


async def test_doctor_tells_a_user_who_may_only_read_which_grants_a_worker_needs(tmp_path, postgres_server):
    owner = await create_database(postgres_server)
    async with PostgresStorage(owner):
        pass
    role = await create_role(postgres_server, SECRET, (owner, "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"))
    code, out, err = await troupe("doctor", env={"TROUPE_DATA_DIR": str(tmp_path / "data"),
                                                 "TROUPE_DATABASE_URL": url_as(owner, role, SECRET)}, cwd=tmp_path)
    assert code == 1, out + err
    text = " ".join(out.split())
    assert "✗ database" in text and "lacks INSERT, UPDATE, DELETE on worlds" in text, text
    assert 'fix: grant them as the tables\' owner (GRANT INSERT, UPDATE, DELETE ON worlds' in text, text
    assert f'TO "{role}"; GRANT INSERT ON audit TO "{role}";' in text, text
    assert "Traceback" not in out + err and SECRET not in out + err


@pytest.mark.parametrize(
    ("command", "code"),
    [(["console", "--script", "script.txt"], 2), (["export"], 2), (["backup", "backups/"], 2),
     (["serve", "--console"], 2), (["migrate", "--to", "{url}"], 1)],
    ids=["console", "export", "backup", "serve", "migrate"],
)
async def test_each_command_says_what_to_grant_in_one_line(here, capsys, monkeypatch, unprivileged_url, command, code):
    (here / "script.txt").write_text("Hello\n")
    if command[0] == "migrate":
        async with SQLiteStorage(here / "data" / "troupe.db"):  # something to move
            pass
    else:
        monkeypatch.setenv("TROUPE_DATABASE_URL", unprivileged_url)
    assert await asyncio.to_thread(main, [arg.format(url=unprivileged_url) for arg in command]) == code
    captured = capsys.readouterr()
    text = " ".join((captured.out + captured.err).split())  # as one line, however the terminal wrapped it
    assert "permission denied for table schema_migrations" in text and ADVICE in text, text
    assert "Traceback" not in text and SECRET not in text
