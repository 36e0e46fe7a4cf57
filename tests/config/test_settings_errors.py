"""A setting that cannot be used is said in one line, by every command alike: which config file or
environment variable, and what to change; exit code 2, no traceback, no pydantic link."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bots.cli import main
from config.settings import SettingsError, load_settings

#: Every command that reads the settings, with the arguments it needs.
COMMANDS = (
    ["console", "--script", "script.txt"], ["run"], ["simulate", "scenario.yaml"], ["doctor"], ["export"],
    ["backup", "copy.db"], ["serve", "--console"], ["discord"], ["slack"],
)


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder with no config file and no TROUPE_ variables."""
    for name in list(os.environ):
        if name.startswith(("TROUPE_", "OPENAI_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "300")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "script.txt").write_text("Hello\n")
    return tmp_path


def said(capsys: pytest.CaptureFixture[str], command: list[str]) -> str:
    """What ``troupe COMMAND`` said, checked to be one error line and exit code 2."""
    code = main(command)
    captured = capsys.readouterr()
    text = (captured.out + captured.err).strip()
    assert code == 2, (command, text)
    assert text.startswith("error: ") and "\n" not in text, (command, text)
    assert "Traceback" not in text and "pydantic.dev" not in text and "EnvSettingsSource" not in text, text
    return text


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_config_file_that_is_not_yaml_is_named_by_every_command(here, capsys, command):
    (here / "troupe.yaml").write_text("llm: [unclosed\n")
    text = said(capsys, command)
    assert "the config file troupe.yaml is not valid YAML" in text and "line 2, column 1" in text, text


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_data_folder_that_is_a_file_is_refused_by_every_command(here, capsys, monkeypatch, command):
    (here / "afile").write_text("")
    monkeypatch.setenv("TROUPE_DATA_DIR", "afile")
    text = said(capsys, command)
    assert "the data folder afile is a file: point it to a folder" in text and "TROUPE_DATA_DIR" in text, text


@pytest.mark.parametrize(
    "env, config, expected",
    [
        ({"TROUPE_CONFIG": "/nope.yaml"}, None,
         "TROUPE_CONFIG points to /nope.yaml, which does not exist: create it, or unset TROUPE_CONFIG"),
        ({"TROUPE_CONFIG": "."}, None, "TROUPE_CONFIG points to ., which is a folder: name the YAML file itself"),
        ({"TROUPE_DATA_DIR": "afile/sub"}, None, "the data folder afile/sub is inside afile, which is a file"),
        ({"TROUPE_BOT_DATABASE": "adir"}, None,
         "the database adir is a folder, not a file: point it to a file, e.g. adir/troupe.db (set by the "
         "environment variable TROUPE_BOT_DATABASE"),
        ({}, "- llm\n- bot\n", "the config file troupe.yaml holds a list, not settings by name"),
        ({}, b"llm:\n  model: caf\xe9\n", "the config file troupe.yaml is not UTF-8 text"),
        ({"TROUPE_BOT_MODERATOR_USER_IDS": "notjson"}, None,
         'TROUPE_BOT_MODERATOR_USER_IDS is not valid JSON: it must be a JSON list, e.g. ["123"]'),
        ({"TROUPE_DISCORD_GUILD_IDS": "123,456"}, None,
         "TROUPE_DISCORD_GUILD_IDS is not valid JSON: it must be a JSON list, e.g. [123]"),
        ({"TROUPE_VERIFICATION_TOXICITY": "hold_at=0.6"}, None,
         'TROUPE_VERIFICATION_TOXICITY is not valid JSON: it must be a JSON object, e.g. {"hold_at": 0.5}'),
        ({"TROUPE_LLM_TIMEOUT_S": "soon"}, None,
         "llm.timeout_s: Input should be a valid number, unable to parse string as a number (set by the "
         "environment variable TROUPE_LLM_TIMEOUT_S: correct or unset it)"),
        ({}, "bot:\n  max_personas: lots\n",
         "bot.max_personas: Input should be a valid integer, unable to parse string as an integer (set in "
         "troupe.yaml: correct it there)"),
        ({"TROUPE_DATABASE_URL": "mysql://me:hunter2@db/troupe"}, None,
         "database_url: it is a mysql:// URL; only PostgreSQL is supported here: write it as "
         "postgresql://USER:PASSWORD@HOST:5432/DATABASE, or unset it to keep the state in SQLite"),
        # The variable wins over the file, so the variable is the one to correct.
        ({"TROUPE_LLM_CONCURRENCY": "many"}, "llm:\n  concurrency: 4\n", "set by the environment variable "
         "TROUPE_LLM_CONCURRENCY"),
    ],
)
@pytest.mark.parametrize("command", [["console"], ["doctor"], ["export"]], ids=lambda c: c[0])
def test_each_mistake_names_its_file_or_variable_and_the_fix(here, capsys, monkeypatch, env, config, expected,
                                                             command):
    (here / "afile").write_text("")
    (here / "adir").mkdir()
    if config is not None:
        path = here / "troupe.yaml"
        path.write_bytes(config) if isinstance(config, bytes) else path.write_text(config)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert expected in said(capsys, command)


def test_load_settings_raises_one_named_error(here, monkeypatch):
    monkeypatch.setenv("TROUPE_LLM_MAX_RETRIES", "-1")
    with pytest.raises(SettingsError, match=r"^the settings could not be read: llm.max_retries: Input should be "
                                            r"greater than or equal to 0 \(set by the environment variable "
                                            r"TROUPE_LLM_MAX_RETRIES: correct or unset it\)$"):
        load_settings()
    monkeypatch.delenv("TROUPE_LLM_MAX_RETRIES")
    assert load_settings().data_dir == Path(".troupe")


def test_a_database_url_refused_is_never_shown(here, capsys, monkeypatch):
    monkeypatch.setenv("TROUPE_DATABASE_URL", "sqlite:///home/me/hunter2.db")
    text = said(capsys, ["console"])
    assert "it is a sqlite:// URL" in text and "TROUPE_DATABASE_URL" in text and "hunter2" not in text
