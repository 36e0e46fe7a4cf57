"""``troupe backup`` on PostgreSQL connects as Troupe does: a password with ``@ : / %`` in it, written
percent-encoded in the URL or as a ``password`` parameter, reaches pg_dump decoded; pg_dump never
prompts for one; and the dump, conversations and all, is readable by its owner only."""

from __future__ import annotations

import os
import stat
import subprocess
from urllib.parse import quote

import pytest

from bots.backup import BackupError, _dump, libpq_target
from bots.cli import main
from bots.storage.base import WorldRecord
from bots.storage.postgres import PostgresStorage
from tests.support.postgres import create_database
from tests.support.roles import create_role, url_as

SECRET = "p@ss:w/rd%1"


@pytest.fixture
async def reader(postgres_server, monkeypatch) -> tuple[str, str]:
    """A database with one world, and a user (not the owner) with password SECRET who may read it all:
    the owner's URL and the user's name. The server's own pg_dump is first on PATH (the system's may
    be of an older major version, which pg_dump refuses)."""
    owner = await create_database(postgres_server)
    async with PostgresStorage(owner) as storage:
        await storage.create_world(WorldRecord(id="w1", channel_key="console:a", name="Team room"))
    role = await create_role(postgres_server, SECRET,
                             (owner, "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}; "
                                     "GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}"))
    monkeypatch.setenv("PATH", os.pathsep.join((str(postgres_server.bin), os.environ["PATH"])))
    monkeypatch.delenv("PGPASSWORD", raising=False)
    return owner, role


def back_up(here, monkeypatch, capsys, url: str) -> tuple[int, str]:
    monkeypatch.setenv("TROUPE_DATABASE_URL", url)
    code = main(["backup", "troupe.dump"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def assert_a_private_dump_of_the_world(postgres_server, path) -> None:
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    listed = subprocess.run([postgres_server.bin / "pg_restore", "--list", path], capture_output=True, text=True,
                            check=True, timeout=30)
    assert "TABLE DATA public worlds" in listed.stdout


def test_a_percent_encoded_password_is_decoded_for_pg_dump(here, capsys, monkeypatch, postgres_server, reader):
    owner, role = reader
    url = url_as(owner, role, SECRET)
    assert "p%40ss%3Aw%2Frd%251" in url
    code, said = back_up(here, monkeypatch, capsys, url)
    assert code == 0, said
    assert "1 world" in said and SECRET not in said and quote(SECRET, safe="") not in said
    assert_a_private_dump_of_the_world(postgres_server, here / "troupe.dump")


def test_a_password_parameter_and_the_other_parameters_reach_pg_dump(here, capsys, monkeypatch, postgres_server,
                                                                      reader):
    owner, role = reader
    # sslmode and application_name are libpq's too; search_path is a setting asyncpg sends the server.
    url = f"{url_as(owner, role, None)}?password={quote(SECRET, safe='')}&sslmode=disable&search_path=public"
    code, said = back_up(here, monkeypatch, capsys, url)
    assert code == 0, said
    assert SECRET not in said and quote(SECRET, safe="") not in said
    assert_a_private_dump_of_the_world(postgres_server, here / "troupe.dump")


def test_a_missing_password_fails_at_once_without_a_prompt_or_a_file(tmp_path, monkeypatch, reader):
    owner, role = reader
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.pgpass either
    monkeypatch.delenv("PGPASSFILE", raising=False)
    with pytest.raises(BackupError) as failed:
        _dump(url_as(owner, role, None), tmp_path / "troupe.dump", 1, False)
    assert "no password supplied" in str(failed.value) and "Password:" not in str(failed.value)
    assert list(tmp_path.iterdir()) == [], "no dump, nor a partial one"


@pytest.mark.parametrize(
    ("url", "dbname", "password"),
    [
        ("postgresql://sp:p%40ss%3Aw%2Frd%251@db:5433/troupe", "postgresql://sp@db:5433/troupe", SECRET),
        # The URL's own user, host and database win over parameters, as in asyncpg (in libpq these win).
        ("postgresql://u%40x:pw@db/troupe?password=other&user=v&host=h&port=1&dbname=d&sslmode=require",
         "postgresql://u%40x@db/troupe?sslmode=require", "pw"),
        # A parameter's ``+`` is a space to asyncpg; settings go to the server in ``options``.
        ("postgres://db/?password=a+b%2B&database=t&application_name=x&statement_timeout=5s&search_path=a%20b",
         "postgresql://db/?application_name=x&options=-c%20statement_timeout%3D5s%20-c%20search_path%3Da%5C%20b",
         "a b+"),
        ("postgresql://u@db?database=t", "postgresql://u@db?dbname=t", None),
    ],
    ids=["encoded", "precedence", "settings", "no-password"],
)
def test_pg_dump_is_given_what_asyncpg_reads_from_the_url(url, dbname, password):
    assert libpq_target(url) == (dbname, password)

