"""``troupe doctor`` against stand-ins: what a user sees for a working setup and for each kind of mistake."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from adapters.doctor import Check, manifest_bot_scopes
from bots.doctor import check_shared_database, redact, run_checks
from bots.storage.base import OutboxEntry, StepWrite, WorkerRecord, WorldRecord, utcnow
from bots.storage.postgres import PostgresStorage
from bots.storage.sqlite import MIGRATIONS, SQLiteStorage
from config.settings import Settings
from simulation.events import Event, EventKind
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.openai_server import FakeOpenAIServer
from tests.fakes.slack_server import FakeSlack
from tests.support.cli import run_troupe, troupe, unprivileged
from tests.support.net import free_port
from tests.support.paths import ROOT
from tests.support.postgres import PASSWORD

API_KEY = "sk-test-doctor-0123456789abcdef"
WRONG_KEY = "sk-wrong-doctor-9876543210fedcba"


def settings(tmp_path: Path, **sections: object) -> Settings:
    return Settings(data_dir=tmp_path, **sections)


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def text_of(checks: list[Check]) -> str:
    return "\n".join(f"{c.name} {c.detail} {c.fix}" for c in checks)


# -- nothing configured -----------------------------------------------------------------------


async def test_a_fresh_install_passes_with_the_demo_model_and_skips_the_platforms(tmp_path):
    checks = by_name(await run_checks(settings(tmp_path)))
    assert checks["settings"].ok is True and "loaded" in checks["settings"].detail
    assert checks["database"].ok is None and "created when the bot first starts" in checks["database"].detail
    assert checks["model"].ok is True and "demo model" in checks["model"].detail
    assert "TROUPE_LLM_MODEL" in checks["model"].detail, "says how to configure a real model"
    assert checks["discord"].ok is None and "TROUPE_DISCORD_TOKEN" in checks["discord"].detail
    assert checks["slack"].ok is None and "TROUPE_SLACK_BOT_TOKEN" in checks["slack"].detail


# -- the model --------------------------------------------------------------------------------


async def test_a_working_model_answers_and_its_latency_is_reported(tmp_path):
    async with FakeOpenAIServer(api_key=API_KEY) as server:
        s = settings(tmp_path, llm={"base_url": server.base_url, "model": "gpt-4o-mini", "api_key": API_KEY})
        checks = await run_checks(s)
    model = by_name(checks)["model"]
    assert model.ok is True
    assert f"model gpt-4o-mini at {server.base_url} answered in" in model.detail
    assert len(server.requests) == 2, "one tiny completion and one tiny structured call, nothing else"
    assert "structured output: json_schema (strict)" in model.detail
    assert API_KEY not in text_of(checks) and API_KEY[:8] not in text_of(checks)


async def test_a_rejected_api_key_says_which_setting_to_check_without_showing_the_key(tmp_path):
    async with FakeOpenAIServer(api_key=API_KEY) as server:
        s = settings(tmp_path, llm={"base_url": server.base_url, "model": "gpt-4o-mini", "api_key": WRONG_KEY})
        checks = await run_checks(s)
    model = by_name(checks)["model"]
    assert model.ok is False
    assert "HTTP 401" in model.detail
    assert model.fix == "the API key was rejected: check TROUPE_LLM_API_KEY"
    everything = text_of(checks)
    for fragment in (WRONG_KEY, WRONG_KEY[:8], WRONG_KEY[-6:]):
        assert fragment not in everything


async def test_an_unreachable_model_server_names_the_url(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    checks = await run_checks(settings(tmp_path, llm={"base_url": url, "model": "llama3.2"}), timeout_s=5)
    model = by_name(checks)["model"]
    assert model.ok is False
    assert model.detail == f"could not reach the model server at {url}"
    assert "TROUPE_LLM_BASE_URL" in model.fix


# -- the database -----------------------------------------------------------------------------


async def test_a_healthy_database_reports_schema_integrity_worlds_and_pending_posts(tmp_path):
    async with SQLiteStorage(tmp_path / "troupe.db") as storage:
        await storage.create_world(WorldRecord(id="w1", channel_key="console:main", name="Team room"))
        event = Event(id=1, kind=EventKind.ACTION, step=1, time=utcnow(), source="Oscar", type="TALK", content="hi")
        entry = OutboxEntry(world_id="w1", channel_key="console:main", event_id=1, persona="Oscar", text="hi")
        await storage.write_step(StepWrite(world_id="w1", events=[event], outbox=[entry]))
        await storage.create_world(WorldRecord(id="w2", channel_key="console:other", name="Other"))
        await storage.stop_world("w2")
        # While the bot runs: the doctor reads alongside it.
        database = by_name(await run_checks(settings(tmp_path)))["database"]
    assert database.ok is True
    assert database.detail == (
        f"{tmp_path / 'troupe.db'}: schema version {len(MIGRATIONS)} (latest), integrity ok, "
        "2 worlds (1 running), 1 pending outbox entry"
    )


async def test_a_database_from_a_newer_troupe_fails_clearly(tmp_path):
    path = tmp_path / "troupe.db"
    async with SQLiteStorage(path):
        pass
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    database = by_name(await run_checks(settings(tmp_path)))["database"]
    assert database.ok is False
    assert f"schema version 99, newer than this Troupe knows (up to {len(MIGRATIONS)})" in database.detail
    assert "upgrade Troupe" in database.fix


async def test_a_file_that_is_not_a_database_fails_with_the_restore_hint(tmp_path):
    (tmp_path / "troupe.db").write_bytes(b"this is not sqlite" * 100)
    database = by_name(await run_checks(settings(tmp_path)))["database"]
    assert database.ok is False and "not a usable SQLite database" in database.detail
    assert "backup" in database.fix


def test_the_documented_sample_has_the_latest_schema_version():
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    sample = doc.split("## Checking a setup", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    assert f"schema version {len(MIGRATIONS)} (latest)" in sample, "make the sample again from `troupe doctor`"


# -- a shared PostgreSQL database -----------------------------------------------------------------


async def test_the_workers_alive_are_judged_by_their_own_lease_not_the_doctors(tmp_path, postgres_url):
    """A worker on a 60 s lease last heard 40 s ago runs; one on a 6 s lease last heard 8 s ago does
    not: whatever TROUPE_LEASE_S the doctor itself runs with (15 s here)."""
    async with PostgresStorage(postgres_url) as storage:
        await storage.create_world(WorldRecord(id="w1", channel_key="slack:C1", name="Team room"))
        now = utcnow()
        for name, lease_s, heard_s in (("patient", 60, 40), ("hasty", 6, 8)):
            await storage.worker_alive(WorkerRecord(id=name, host="box", pid=1, started_at=now, seen_at=now,
                                                    lease_s=lease_s))
            await storage.in_transaction(lambda db, n=name, s=heard_s: db.execute(
                "UPDATE workers SET seen_at = clock_timestamp() - make_interval(secs => $1) WHERE id = $2", s, n),
                "age a heartbeat")
        await storage.take_lease("slack:C1", "patient", 60)
    doctor = settings(tmp_path, database_url=postgres_url, lease_s=15)
    workers = by_name(await check_shared_database(doctor))["workers"]
    assert workers.ok is True, workers.detail
    assert workers.detail.startswith("1 running: patient on box (pid 1, since "), workers.detail
    assert workers.detail.endswith(", lease 60 s): slack:C1") and "hasty" not in workers.detail


async def test_a_fresh_database_says_to_move_a_sqlite_state_before_starting_on_it(tmp_path, postgres_url):
    doctor = settings(tmp_path, database_url=postgres_url)
    [fresh] = await check_shared_database(doctor)
    assert fresh.ok is None and "holds no Troupe tables yet: `troupe serve` sets them up" in fresh.detail
    assert 'To bring the worlds of a SQLite database, run `troupe migrate --to "$TROUPE_DATABASE_URL"` before ' \
           "starting Troupe on it" in fresh.detail
    async with SQLiteStorage(doctor.database_path) as sqlite:  # the state of a bot that ran on SQLite
        await sqlite.create_world(WorldRecord(id="w1", channel_key="console:main", name="Team room"))
    [fresh] = await check_shared_database(doctor)
    assert f"holds no Troupe tables yet, and {doctor.database_path} holds 1 world: to bring them, run " \
           '`troupe migrate --to "$TROUPE_DATABASE_URL"` before starting Troupe on it' in fresh.detail
    assert PASSWORD not in fresh.detail


# -- Discord ----------------------------------------------------------------------------------


async def test_discord_token_accepted_and_rejected(tmp_path):
    async with FakeDiscord() as discord:
        good = settings(tmp_path, discord={"token": discord.token, "api_base": discord.api_base})
        bad = settings(tmp_path, discord={"token": "not-the-right-token-xyz", "api_base": discord.api_base})
        accepted = by_name(await run_checks(good))["discord"]
        rejected = await run_checks(bad)
    assert accepted.ok is True and accepted.detail == f"token accepted: bot Troupe (id {discord.bot_user.id})"
    check = by_name(rejected)["discord"]
    assert check.ok is False and check.detail == "Discord rejected the bot token (HTTP 401)"
    assert "TROUPE_DISCORD_TOKEN" in check.fix
    assert "not-the-right-token-xyz" not in text_of(rejected)


# -- Slack ------------------------------------------------------------------------------------


async def test_slack_tokens_with_every_scope_pass(tmp_path):
    async with FakeSlack(scopes=manifest_bot_scopes()) as slack:
        s = settings(tmp_path, slack={"bot_token": slack.bot_token, "app_token": slack.app_token,
                                      "api_base": slack.api_base})
        checks = by_name(await run_checks(s))
    assert checks["slack bot token"].ok is True
    assert "every scope of the manifest granted" in checks["slack bot token"].detail
    assert checks["slack app token"].ok is True


async def test_slack_reports_missing_scopes_and_a_wrong_app_token(tmp_path):
    scopes = [s for s in manifest_bot_scopes() if s not in ("groups:read", "usergroups:read")]
    async with FakeSlack(scopes=scopes) as slack:
        s = settings(tmp_path, slack={"bot_token": slack.bot_token, "app_token": "xoxb-pasted-the-wrong-one",
                                      "api_base": slack.api_base})
        checks = await run_checks(s)
    found = by_name(checks)
    assert found["slack bot token"].ok is False
    assert "missing scopes: groups:read, usergroups:read" in found["slack bot token"].detail
    assert "reinstall" in found["slack bot token"].fix
    assert found["slack app token"].ok is False and "xapp-" in found["slack app token"].detail
    assert "pasted-the-wrong" not in text_of(checks) and slack.bot_token not in text_of(checks)


async def test_a_rejected_slack_token(tmp_path):
    async with FakeSlack() as slack:
        s = settings(tmp_path, slack={"bot_token": "xoxb-revoked-or-mistyped", "api_base": slack.api_base,
                                      "signing_secret": "a-signing-secret"})
        found = by_name(await run_checks(s))
    assert found["slack bot token"].ok is False
    assert found["slack bot token"].detail == "Slack rejected the bot token (invalid_auth)"
    assert found["slack app token"].ok is None and "HTTP mode" in found["slack app token"].detail


# -- secrets ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "echoed",
    ["Incorrect API key provided: sk-proj-ab***********************yz12", "token xoxb-1234-5678-abcdef was revoked"],
)
def test_anything_shaped_like_a_key_is_masked(echoed):
    assert "[secret]" in redact(echoed)
    assert "ab***" not in redact(echoed) and "5678" not in redact(echoed)


def test_placeholders_and_ordinary_words_survive_masking():
    text = "model llama3.2 at http://ollama:11434/v1 answered; a task-based check"
    assert redact(text, ["ollama"]) == text


# -- the command ------------------------------------------------------------------------------


async def test_cli_prints_one_line_per_check_and_the_fix_of_each_failure(tmp_path):
    async with FakeOpenAIServer(api_key=API_KEY) as server, FakeDiscord() as discord:
        env = {
            "TROUPE_DATA_DIR": str(tmp_path),
            "TROUPE_LLM_BASE_URL": server.base_url,
            "TROUPE_LLM_MODEL": "gpt-4o-mini",
            "TROUPE_LLM_API_KEY": WRONG_KEY,
            "TROUPE_DISCORD_TOKEN": discord.token,
            "TROUPE_DISCORD_API_BASE": discord.api_base,
        }
        code, out, err = await troupe("doctor", env=env, cwd=tmp_path)
    assert code == 1, out + err
    lines = out.splitlines()
    assert lines[0].startswith("troupe ") and lines[0].endswith(" doctor")
    assert any(line.startswith("✓ settings") and "TROUPE_LLM_API_KEY" in line for line in lines), "names, not values"
    assert any(line.startswith("– database") for line in lines)
    model = next(i for i, line in enumerate(lines) if line.startswith("✗ model"))
    assert "fix: the API key was rejected: check TROUPE_LLM_API_KEY" in lines[model + 1]
    assert any(line.startswith("✓ discord") and "token accepted" in line for line in lines)
    assert lines[-1] == "1 of 5 checks failed (2 skipped)"
    for fragment in (WRONG_KEY, WRONG_KEY[:8], WRONG_KEY[-6:], discord.token):
        assert fragment not in out + err


async def test_cli_exit_codes_for_a_good_setup_and_unreadable_settings(tmp_path):
    code, out, err = await troupe("doctor", env={"TROUPE_DATA_DIR": str(tmp_path)}, cwd=tmp_path)
    assert code == 0, out + err
    assert out.splitlines()[-1] == "all checks passed (3 skipped)"

    (tmp_path / "troupe.yaml").write_text("bot:\n  max_personas: lots\n")
    code, out, err = await troupe("doctor", cwd=tmp_path)
    assert code == 2
    assert "the settings could not be read" in out and "max_personas" in out


async def test_a_misspelt_or_mistyped_config_file_is_named_with_what_to_fix(tmp_path):
    config = tmp_path / "troupe.yaml"
    config.write_text("llm:\n  modle: gpt-4o-mini\nbott:\n  x: 1\n")
    env = {"TROUPE_CONFIG": str(config), "TROUPE_DATA_DIR": str(tmp_path / "data")}
    code, out, err = await troupe("doctor", "--timeout", "2", env=env)
    assert code == 1, out + err
    assert f"{config} has keys Troupe does not know: llm.modle, bott (they are ignored)" in out
    assert "fix: check their spelling" in out
    config.write_text("llm:\n  budget_usd: lots\n")
    code, out, err = await troupe("doctor", "--timeout", "2", env=env)
    assert code == 2 and "llm.budget_usd: Input should be a valid number" in out
    assert "errors.pydantic.dev" not in out + err and "Traceback" not in out + err


# -- the database's place ---------------------------------------------------------------------


async def test_another_programs_database_is_named_and_left_alone(tmp_path):
    database = tmp_path / "troupe.db"
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE customers (id INTEGER, name TEXT)")
    db.close()
    content = database.read_bytes()
    check = by_name(await run_checks(settings(tmp_path)))["database"]
    assert check.ok is False
    assert check.detail == f"{database} is not a Troupe database (it has tables customers)"
    assert "point TROUPE_BOT_DATABASE" in check.fix
    assert database.read_bytes() == content


async def test_a_database_path_that_is_a_folder_is_said_to_be_one(tmp_path):
    (tmp_path / "db").mkdir()
    check = by_name(await run_checks(settings(tmp_path, bot={"database": tmp_path / "db"})))["database"]
    assert check.ok is False and check.detail == f"{tmp_path / 'db'} is a folder, not a database file"
    assert "point TROUPE_BOT_DATABASE to a file" in check.fix


async def test_a_read_only_data_folder_is_said_to_be_one_with_the_permissions_to_fix(tmp_path):

    prefix = unprivileged()
    async with SQLiteStorage(tmp_path / "troupe.db") as storage:
        await storage.create_world(WorldRecord(id="w1", channel_key="console:main", name="Team room"))
    tmp_path.chmod(0o555)
    try:
        code, out, err = run_troupe("doctor", env={"TROUPE_DATA_DIR": str(tmp_path)}, prefix=prefix, cwd=tmp_path)
    finally:
        tmp_path.chmod(0o755)
    assert code == 1, out + err
    lines = out.splitlines()
    line = next(i for i, text in enumerate(lines) if text.startswith("✗ database"))
    assert "integrity ok, 1 world (1 running)" in lines[line], "it was read all the same"
    assert f"but the folder {tmp_path} is not writable for this user" in lines[line]
    assert "readonly database" not in out and "restore" not in out
    assert f"fix: make it writable for the user running Troupe (chmod u+w {tmp_path}" in lines[line + 1]


async def test_a_slack_app_for_many_workspaces_is_checked_for_its_secrets(tmp_path):
    incomplete = by_name(await run_checks(settings(tmp_path, slack={"client_id": "1111.2222",
                                                                    "signing_secret": "sign-here"})))
    check = incomplete["slack app for many workspaces"]
    assert check.ok is False and "TROUPE_SLACK_CLIENT_SECRET" in check.detail and "SIGNING" not in check.detail
    complete = await run_checks(settings(tmp_path, slack={"client_id": "1111.2222", "client_secret": "shh-secret",
                                                          "signing_secret": "sign-here"}))
    assert by_name(complete)["slack app for many workspaces"].ok is True
    assert "shh-secret" not in text_of(complete)
