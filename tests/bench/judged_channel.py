"""How long a channel whose posts the model-based judge reviews waits for its personas' replies.

    python -m tests.bench.judged_channel [--personas N] [--judge-ms MS] [--model-ms MS] [--rounds N]

One channel, 5 personas, the judge on (``verification.judge.enabled``). The fake model answers a turn
after 300 ms and a judge's review after 500 ms. A human message each round; every persona answers,
each reply reviewed before it is posted. The replies of a step come back together, so their reviews
run side by side: the last post should come about one review after the first, not one review per
persona before it (``one_review_per_persona_s`` is what that would take).

Prints one JSON object on its last line: the median, over the rounds, of the time from the message
to the first post and to the last.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from tests.fakes.openai_server import FakeOpenAIServer
from tests.support.testbot import TestBot, fake_model_settings, start_bot
from tests.support.turns import TurnRule, system_text

PERSONAS = ("Priya Nair", "Henrik Lindqvist", "Tomasz Kowalski", "Amara Okafor", "Diego Hernández")
PASS = json.dumps({"decision": "pass", "category": "none", "reason": "ordinary work talk"})


async def post_times(bot: TestBot, text: str, expected: int) -> list[float]:
    """Seconds from pushing ``text`` to each of the ``expected`` posts it gets."""
    seen, started, times = len(bot.adapter.posts("general")), time.perf_counter(), []
    bot.adapter.push_message(text, channel="general")
    while len(times) < expected:
        while len(times) < len(bot.adapter.posts("general")) - seen:
            times.append(time.perf_counter() - started)
        await asyncio.sleep(0.002)
    await bot.app.wait_idle()
    return times


async def main(personas: int, judge_s: float, model_s: float, rounds: int) -> dict[str, object]:
    rule = TurnRule()

    async def respond(body):
        if system_text(body).startswith("You review one chat message"):
            await asyncio.sleep(judge_s)  # (the server's latency runs meanwhile, not after)
            return PASS
        return rule(body)

    with tempfile.TemporaryDirectory() as tmp:
        async with FakeOpenAIServer(latency=model_s) as server:
            server.responder = respond
            settings = fake_model_settings(Path(tmp), server, verification={"judge": {"enabled": True}},
                                           default_exchanges=0)
            bot = await start_bot(settings)
            try:
                await bot.command("start Launch review", channel="general")
                for name in PERSONAS[:personas]:
                    await bot.command(f"persona add {name}", channel="general")
                await post_times(bot, "Good morning!", personas)  # warm-up: the model's abilities are learnt
                firsts, lasts = [], []
                for n in range(rounds):
                    times = await post_times(bot, f"Round {n}: what should we change first?", personas)
                    firsts.append(times[0])
                    lasts.append(times[-1])
            finally:
                await bot.app.stop()
    return {
        "personas": personas,
        "model_latency_ms": round(model_s * 1000),
        "judge_latency_ms": round(judge_s * 1000),
        "first_post_s": round(statistics.median(firsts), 2),
        "last_post_s": round(statistics.median(lasts), 2),
        "one_review_per_persona_s": round(model_s + personas * judge_s, 2),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--personas", type=int, default=5, choices=range(1, len(PERSONAS) + 1))
    parser.add_argument("--judge-ms", type=int, default=500)
    parser.add_argument("--model-ms", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.judge_ms < args.model_ms:
        parser.error("--judge-ms is the whole review, the model's latency included: at least --model-ms")
    print(json.dumps(asyncio.run(main(args.personas, args.judge_ms / 1000, args.model_ms / 1000, args.rounds))))
