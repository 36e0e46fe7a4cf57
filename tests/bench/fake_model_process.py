"""The fake model server in its own process, so a benchmark measures the bot, not the fake.

    python -m tests.bench.fake_model_process LATENCY_S
prints ``PORT`` on its first line and serves until stdin closes.
"""

from __future__ import annotations

import asyncio
import sys

from tests.fakes.openai_server import FakeOpenAIServer
from tests.support.turns import TurnRule


async def main(latency: float) -> None:
    async with FakeOpenAIServer(latency=latency) as server:
        server.responder = TurnRule()
        print(server.port, flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 0.0))
