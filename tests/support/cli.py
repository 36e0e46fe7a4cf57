"""``troupe`` run as a user runs it: a process of its own, with none of this shell's TROUPE_ or
OPENAI_ variables, so only what a test sets reaches it."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import ROOT

#: Long enough for a slow machine to start and stop; a start that hangs takes longer.
RUN_TIMEOUT_S = 40


async def troupe(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> tuple[int, str, str]:
    """``troupe ARGS`` in a process of its own, awaited: (exit code, stdout, stderr)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TROUPE_", "OPENAI_"))}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bots.cli", *args,
        env={**clean, "COLUMNS": "200", **(env or {})},
        cwd=cwd or ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode, out.decode(), err.decode()


def run_troupe(*args: str, env: dict[str, str], cwd: Path | None = None, prefix: tuple[str, ...] = (),
               stdin: bytes | None = b"") -> tuple[int | str, str, str]:
    """``troupe ARGS`` in a process of its own: (exit code, or "hung", stdout, stderr)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TROUPE_", "OPENAI_"))}
    proc = subprocess.Popen([*prefix, sys.executable, "-m", "bots.cli", *args], cwd=cwd or ROOT,
                            env={**clean, "COLUMNS": "300", "PYTHONPATH": str(ROOT), **env},
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(stdin, timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return "hung", out.decode(), err.decode()
    return proc.returncode, out.decode(), err.decode()


def script(tmp_path: Path, *lines: str) -> Path:
    """A ``--script`` file of these lines, for ``troupe console --script``."""
    path = tmp_path / "script.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def unprivileged() -> tuple[str, ...]:
    """A command prefix that runs without the power to ignore file permissions (root has it)."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: file permissions cannot be tested")
    return (setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner", "--inh-caps=-all")
