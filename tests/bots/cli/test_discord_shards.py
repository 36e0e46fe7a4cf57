"""``troupe discord --shard-count N --shards IDS`` (and ``serve``): shards that do not fit are refused
before anything starts, with what to change."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bots.cli import main


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in [k for k in os.environ if k.startswith("TROUPE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("TROUPE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TROUPE_DISCORD_TOKEN", "a-token")
    return tmp_path


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Exit code and everything printed (one line per message, however the terminal wraps)."""
    try:
        code = main(args)
    except SystemExit as exit:  # argparse refuses a value it cannot read
        code = int(exit.code or 0)
    captured = capsys.readouterr()
    return code, " ".join((captured.out + captured.err).split())


@pytest.mark.parametrize("command", ["discord", "serve"])
@pytest.mark.parametrize(("args", "message"), [
    (["--shard-count", "4", "--shards", "0-9"],
     "--shard-count 4 --shards 0-9: shards 4-9 do not exist in a deployment of 4 shards (ids run from 0 to 3): "
     "give ids below 4, or a larger shard count"),
    (["--shard-count", "4", "--shards", "x"],
     "argument --shards: 'x' is not a shard id or range: give a range (0-3), a list (0,2,5), both (0-3,8) or one id (2)"),
    (["--shard-count", "0"], "argument --shard-count: must be 1 or more, not 0: give the deployment's shard count"),
    (["--shard-count", "four"], "argument --shard-count: 'four' is not a number"),
    (["--shards", "1"], "--shards 1: shard ids need the shard count of the whole deployment too"),
    (["--shard-count", "4", "--shards", "3-1"], "the range 3-1 runs backwards: write it as 1-3"),
    (["--shard-count", "4", "--shards", "0-2,2"], "shard 2 is named twice"),
])
def test_shards_that_do_not_fit_are_refused_with_what_to_fix(command: str, args: list[str], message: str,
                                                             clean_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, printed = run([command, *args], capsys)
    assert code == 2 and message in printed, printed
    assert "Traceback" not in printed
    assert not (clean_env / "troupe.db").exists(), "nothing started"


def test_shard_settings_that_do_not_fit_name_the_variable(clean_env: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TROUPE_DISCORD_SHARD_COUNT", "2")
    monkeypatch.setenv("TROUPE_DISCORD_SHARD_IDS", "1-3")
    code, printed = run(["discord"], capsys)
    assert code == 2 and "shards 2-3 do not exist in a deployment of 2 shards" in printed, printed
    assert "TROUPE_DISCORD_SHARD" in printed


def test_a_flag_corrects_the_setting_it_names(clean_env: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """The count from the environment, the ids from the command line: checked together."""
    monkeypatch.setenv("TROUPE_DISCORD_SHARD_COUNT", "2")
    code, printed = run(["discord", "--shards", "2"], capsys)
    assert code == 2 and "--shards 2: shard 2 does not exist in a deployment of 2 shards" in printed, printed
