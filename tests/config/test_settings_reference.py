"""docs/configuration.md documents every setting, and is what the generator writes today."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys

import pytest
from pydantic import BaseModel

from tests.support.paths import ROOT

SCRIPT = ROOT / "scripts" / "settings_reference.py"


def _load():
    spec = importlib.util.spec_from_file_location("settings_reference", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


ref = _load()
DOC = ROOT / "docs" / "configuration.md"


def test_the_document_is_up_to_date():
    current = DOC.read_text(encoding="utf-8")
    assert ref.render(current) == current, "docs/configuration.md is stale: run .venv/bin/python scripts/settings_reference.py"


def test_every_setting_of_every_section_has_a_row_with_its_env_var_and_a_description():
    text = DOC.read_text(encoding="utf-8")
    paths = ref.all_paths()
    assert {"data_dir", "llm.model", "bot.database", "discord.token", "slack.app_token",
            "verification.toxicity.hold_at", "verification.judge.enabled"} <= set(paths)
    for path in paths:
        row = re.search(rf"^\| `{re.escape(path)}` \| (.+?) \| (.+?) \| (.+?) \| (.+) \|$", text, re.MULTILINE)
        assert row is not None, f"{path} is not in docs/configuration.md"
        env, type_, default, description = row.groups()
        assert env.startswith("`TROUPE_"), path
        assert type_ and default and len(description) > 10, path


def test_env_var_names_are_the_ones_the_settings_read(monkeypatch, tmp_path):
    from config.settings import Settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(ref.env_var("llm.base_url").strip("`"), "http://localhost:11434/v1")
    monkeypatch.setenv(ref.env_var("data_dir").strip("`"), str(tmp_path))
    monkeypatch.setenv(ref.env_var("verification.pii_action").strip("`"), "block")
    parent = ref.env_var("verification.toxicity.hold_at").split("`")[1]
    monkeypatch.setenv(parent, '{"hold_at": 0.6}')
    settings = Settings()
    assert settings.llm.base_url == "http://localhost:11434/v1" and settings.data_dir == tmp_path
    assert settings.verification.pii_action == "block" and settings.verification.toxicity.hold_at == 0.6


def test_a_setting_without_a_description_fails_loudly():
    class Section(BaseModel):
        #: Documented.
        known: int = 1
        undocumented: str = "x"

    with pytest.raises(SystemExit, match=r"the setting s.undocumented has no description: add a `#:` comment"):
        ref.rows(Section, "s.")


def test_descriptions_table_holds_no_stale_or_redundant_entries():
    paths = set(ref.all_paths())
    assert set(ref.DESCRIPTIONS) <= paths, "DESCRIPTIONS names settings that no longer exist"
    ref.rows()  # raises if an entry duplicates a #: comment


def test_hand_written_parts_survive_and_check_mode_reports_staleness(tmp_path):
    doc = tmp_path / "configuration.md"
    doc.write_text(f"# Title\n\nKept.\n\n{ref.BEGIN}\nold table\n{ref.END}\n\nAlso kept.\n")
    check = [sys.executable, str(SCRIPT), "--path", str(doc)]
    assert subprocess.run([*check, "--check"], capture_output=True).returncode == 1
    assert subprocess.run(check, capture_output=True).returncode == 0
    text = doc.read_text()
    assert text.startswith("# Title\n\nKept.\n\n") and text.endswith("\n\nAlso kept.\n")
    assert "old table" not in text and "| `llm.model` |" in text
    assert subprocess.run([*check, "--check"], capture_output=True).returncode == 0


def test_the_document_covers_backup_restore_and_docker():
    text = DOC.read_text(encoding="utf-8")
    assert "troupe backup" in text and "To restore:" in text and "-wal" in text
    assert "docker run" in text and "-v troupe-data:/data" in text
