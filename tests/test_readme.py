"""The README's examples work as written, on a machine with no model configured."""

from __future__ import annotations

import asyncio
import os
import re
import sys

from tests.support.paths import ROOT


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)


async def test_the_library_example_runs_as_written(tmp_path):
    (example,) = [b for b in python_blocks() if "TinyWorld(" in b]
    script = tmp_path / "example.py"
    script.write_text(example)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TROUPE_", "OPENAI_"))}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(script), cwd=tmp_path,
        env={**clean, "PYTHONPATH": str(ROOT), "TROUPE_DATA_DIR": str(tmp_path / "data")},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert lines[0] == "moderator: Smart speaker or robot vacuum?"
    # No key is set, so the offline demo model answers, and every persona line says so.
    personas = [line for line in lines[1:] if not line.startswith("moderator:")]
    assert personas and all(line.startswith(("Priya Nair (demo model): ", "Henrik Lindqvist (demo model): "))
                             for line in personas)
    assert {line.split(" (")[0] for line in personas} == {"Priya Nair", "Henrik Lindqvist"}
