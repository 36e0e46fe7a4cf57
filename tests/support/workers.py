"""``troupe`` worker processes on a shared PostgreSQL database, pointed at the fake Slack and a fake
model: the environment each runs with, and the process itself."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from tests.fakes.slack_server import FakeSlack
from tests.support.paths import ROOT


def slack_worker_env(folder: Path, name: str, *, database_url: str, slack: FakeSlack, model_url: str,
                     lease_s: float, moderator: str, **settings: str) -> dict[str, str]:
    """The environment of worker ``name``: its own data folder under ``folder``, the shared database,
    the fake Slack over Socket Mode (no pacing), the fake model (no cache), one answer a message;
    ``settings`` add or replace ``TROUPE_`` variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TROUPE_", "OPENAI_"))}
    env.update({
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "TROUPE_DATA_DIR": str(folder / name),
        "TROUPE_DATABASE_URL": database_url,
        "TROUPE_LEASE_S": str(lease_s),
        "TROUPE_LLM_MODEL": "gpt-4o-mini",
        "TROUPE_LLM_BASE_URL": model_url,
        "TROUPE_LLM_API_KEY": "sk-test",
        "TROUPE_LLM_CACHE": "false",
        "TROUPE_BOT_DEFAULT_EXCHANGES": "0",
        "TROUPE_BOT_MODERATOR_USER_IDS": json.dumps([moderator]),
        "TROUPE_SLACK_BOT_TOKEN": slack.bot_token,
        "TROUPE_SLACK_APP_TOKEN": slack.app_token,
        "TROUPE_SLACK_API_BASE": slack.api_base,
        "TROUPE_SLACK_POST_INTERVAL_S": "0",
        "TROUPE_SLACK_PING_INTERVAL_S": "1",
        **settings,
    })
    return env


async def stop_all(processes: Iterable[asyncio.subprocess.Process], timeout: float = 20) -> None:
    """SIGTERM to each process still running, as a supervisor stops it; SIGKILL if it takes too long."""
    for process in processes:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout)
            except TimeoutError:
                process.kill()
                await process.wait()


class WorkerProcess:
    """One ``troupe`` process (``python -m bots.cli ARGS``) in its own session, logging to
    ``folder/NAME.log``; killed with SIGKILL or stopped with SIGTERM, and started again at will."""

    def __init__(self, name: str, env: dict[str, str], folder: Path, args: Sequence[str]) -> None:
        self.name = name
        self.env = env
        self.args = list(args)
        self.log_path = folder / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "bots.cli", *self.args], cwd=ROOT, env=self.env,
                                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=out,
                                            start_new_session=True)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout: float = 30) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
