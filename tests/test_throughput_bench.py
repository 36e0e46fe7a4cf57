"""The throughput benchmark runs end to end (a few channels, so it takes seconds): the bot's rounds
and the model layer's, in its own process, alternate and both report their figures."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.paths import ROOT


def test_the_throughput_benchmark_compares_the_bot_with_the_model_layer_in_one_run():
    done = subprocess.run([sys.executable, "-m", "tests.bench.throughput", "--channels", "3"], cwd=ROOT,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    *_, costs, last = done.stdout.strip().splitlines()
    figures, cpu = json.loads(last), json.loads(costs)
    assert figures["channels"] == 3 and figures["personas_per_channel"] == 5
    # Each round took at least the model's latency, and the ratio is of this run's two rounds.
    assert figures["round_s"] >= 0.3 and figures["model_layer_round_s"] >= 0.3
    assert abs(figures["over_model_layer"] - figures["round_s"] / figures["model_layer_round_s"]) <= 0.01
    assert cpu["model_layer_cpu_ms_per_call"] > 0 and cpu["loop_cpu_ms_per_turn"] > 0
    assert cpu["bot_cpu_ms_per_turn"] >= cpu["loop_cpu_ms_per_turn"]
    # Every round of each is listed, the fold round (the 4th) among them, with its stall.
    assert len(cpu["rounds_s"]) == len(cpu["model_layer_rounds_s"]) == len(cpu["loop_stalls_ms"]) == 5
    assert figures["max_loop_stall_ms"] == max(cpu["loop_stalls_ms"])
