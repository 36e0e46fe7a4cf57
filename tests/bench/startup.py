"""How soon does ``troupe console`` open, and answer? (the offline demo model, a fresh data folder)

    python -m tests.bench.startup [--runs N]

Each run starts ``troupe console --script`` in a new process and a new folder, the way ``make run``
does on a fresh machine. The script's first line is read the moment the console opens, before
anything has warmed up: the worst case for the first answer. Times are taken from the lines the
console prints. Prints one JSON object on its last line (medians over the runs, seconds):
``{"runs", "open_s", "first_answer_s", "second_answer_s"}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TROUPE = Path(sys.executable).with_name("troupe")
SCRIPT = "What do you all think of remote work?\nAnd of four-day weeks?\n/quit\n"


def one_run() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="troupe-startup-") as folder:
        Path(folder, "script.txt").write_text(SCRIPT)
        started = time.perf_counter()
        process = subprocess.Popen([str(TROUPE), "console", "--script", "script.txt"], cwd=folder, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=1)
        assert process.stdout is not None
        opened: float | None = None
        asked: list[float] = []
        answered: list[float] = []
        for line in process.stdout:
            now = time.perf_counter() - started
            if opened is None and line.startswith("troupe "):
                opened = now
            elif line.startswith("> ") and not line.startswith("> /"):
                asked.append(now)
            elif "(demo model):" in line and len(answered) < len(asked):
                answered.append(now)
        if process.wait(60) != 0 or opened is None or len(answered) != 2:
            raise SystemExit(f"the console did not open and answer twice (exit code {process.returncode})")
        return {"open_s": opened, "first_answer_s": answered[0] - asked[0], "second_answer_s": answered[1] - asked[1]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.startup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    runs = [one_run() for _ in range(max(1, args.runs))]
    for index, run in enumerate(runs, 1):
        print(f"run {index}: " + ", ".join(f"{k} {v:.3f}" for k, v in run.items()), file=sys.stderr)
    summary = {"runs": len(runs), **{key: round(statistics.median(r[key] for r in runs), 3) for key in runs[0]}}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
