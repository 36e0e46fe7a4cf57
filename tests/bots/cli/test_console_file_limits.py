"""``troupe console --script`` given files that are no files, and a command that fails unexpectedly.

The console's user may name any file on the machine. A device that never ends (``/dev/zero``), a
named pipe nobody writes to, or a folder, named as a persona, schema or scenario file, is refused
with one clear line, in a process that neither fills its memory nor hangs. A command that fails in a
way nobody foresaw is answered too, and the script exits 1 for it like for any command not done.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.cli import run_troupe, script

#: The console runs with its address space capped, so a reader that did read /dev/zero to its end
#: fails the test with a MemoryError instead of taking the machine's memory.
MEMORY_CAP = ("sh", "-c", 'ulimit -v 3000000 && exec "$@"', "sh") if os.name == "posix" else ()

pytestmark = pytest.mark.skipif(not Path("/dev/zero").exists() or not hasattr(os, "mkfifo"),
                                reason="needs /dev/zero and named pipes")


def only_you(out: str, command: str) -> str:
    """The private answer printed right after ``> command``."""
    after = out.split(f"> {command}\n", 1)[1]
    line = after.splitlines()[0]
    assert line.startswith("(only you) "), after[:500]
    return line.removeprefix("(only you) ")


def test_devices_pipes_and_folders_are_refused_and_the_world_is_unchanged(tmp_path: Path) -> None:
    pipe = tmp_path / "priya.json"
    os.mkfifo(pipe)
    commands = (
        "/persona add /dev/zero",
        f"/persona add {pipe}",
        "/extract --schema /dev/zero",
        f"/extract --schema {pipe}",
        f"/extract --schema {tmp_path}",
        "/stop confirm",
        "/start --scenario /dev/zero",
        f"/start --scenario {pipe}",
        "/start --reopen",
        "/persona list",
    )
    code, out, err = run_troupe("console", "--script", str(script(tmp_path, *commands)),
                                env={"TROUPE_DATA_DIR": str(tmp_path / "data")}, prefix=MEMORY_CAP)
    assert code == 1, (code, out, err)
    pipe_is = f"{pipe}: is a named pipe (FIFO), not a regular file"
    expected = {
        "/persona add /dev/zero": "/dev/zero: is a device, not a regular file; a persona file must be a regular file",
        f"/persona add {pipe}": f"{pipe_is}; a persona file must be a regular file",
        "/extract --schema /dev/zero": "/dev/zero: is a device, not a regular file; a schema file must be a regular file",
        f"/extract --schema {pipe}": f"{pipe_is}; a schema file must be a regular file",
        f"/extract --schema {tmp_path}": f"{tmp_path}: is a folder, not a regular file; a schema file must be",
        "/start --scenario /dev/zero": "/dev/zero: is a device, not a regular file; a scenario file must be",
        f"/start --scenario {pipe}": f"{pipe_is}; a scenario file must be a regular file",
    }
    for command, says in expected.items():
        assert only_you(out, command).startswith(says), (command, out)
    assert f"7 command(s) in {tmp_path / 'script.txt'} could not be done" in out
    listed = only_you(out, "/persona list")
    assert listed.startswith("• Priya Nair") and "Tomasz Kowalski" in out.split("> /persona list", 1)[1]
    assert out.split("> /persona list", 1)[1].count("• ") == 3, "no persona was added"
    assert "Traceback" not in out + err and "MemoryError" not in out + err


def test_a_schema_nested_past_any_stack_is_refused_and_the_script_exits_1(tmp_path: Path) -> None:
    """A schema of arrays nested 300 deep, which building its model would overflow Python's
    recursion limit with, is refused in one line and counted like any command not done."""
    node: dict = {"type": "string"}
    for _ in range(300):
        node = {"type": "array", "items": node}
    schema = tmp_path / "deep.json"
    schema.write_text(json.dumps({"properties": {"stance": node}}))
    code, out, err = run_troupe("console", "--script", str(script(tmp_path, f"/extract --schema {schema}", "/status")),
                                env={"TROUPE_DATA_DIR": str(tmp_path / "data")})
    assert code == 1, (code, out, err)
    answer = only_you(out, f"/extract --schema {schema}")
    assert "more than 16 levels deep" in answer and "Traceback" not in out, out
    assert "World “Team room”: active" in out.split("> /status", 1)[1], "the console kept answering"
    assert f"1 command(s) in {tmp_path / 'script.txt'} could not be done" in out
