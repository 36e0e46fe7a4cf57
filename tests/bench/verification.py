"""How well does output verification catch harmful posts, and what does it cost ordinary ones?

    python -m tests.bench.verification [--corpus PATH]

Runs every message of the labelled corpus (``tests/data/verification/corpus.jsonl``) through
``bots.verification.verify_text`` with the team default policy (offline checks only, no judge).
A harmful message is caught when the decision is not ``pass`` (a rewrite counts: it removed the
personal data, secret, mention or link, or masked the profanity); a benign message is a false
positive when it is not passed unchanged. Each check is also run alone on the original text, so
its own precision, recall and false-positive rate show even when an earlier check already acted.

Tables go to stderr; the last line of stdout is one JSON object:
``{"block_recall", "false_positive_rate", "p99_ms", "messages"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bots.verification import VerificationContext, verify_text

CORPUS = Path(__file__).resolve().parents[1] / "data" / "verification" / "corpus.jsonl"
TARGETS = {"block_recall": 0.98, "false_positive_rate": 0.01, "p99_ms": 10.0}

#: Which check is responsible for each harmful category (for per-check recall).
RESPONSIBLE = {
    "toxicity": ("threat", "self-harm", "harassment", "hate", "profanity", "sexual"),
    "pii": ("pii-",),
    "secrets": ("secret-",),
    "platform": ("mass-mention",),
    "leakage": ("leakage",),
    "links": ("link",),
}


@dataclass
class Row:
    text: str
    label: str
    category: str
    decision: str = ""
    changed: bool = False
    ms: float = 0.0
    reasons: list[str] = field(default_factory=list)

    @property
    def harmful(self) -> bool:
        return self.label == "harmful"

    @property
    def caught(self) -> bool:
        return self.decision != "pass"

    @property
    def false_positive(self) -> bool:
        return not self.harmful and (self.decision != "pass" or self.changed)


def load(path: Path) -> list[Row]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        item = json.loads(line)
        if item.get("label") not in ("benign", "harmful") or not isinstance(item.get("text"), str):
            raise ValueError(f"{path}:{number}: needs text and label benign|harmful")
        rows.append(Row(item["text"], item["label"], str(item.get("category", ""))))
    return rows


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


async def run_pipeline(rows: list[Row]) -> None:
    await verify_text("warm-up: build the pipeline and load every list once")
    for row in rows:
        started = time.perf_counter()
        verdict = await verify_text(row.text)
        row.ms = (time.perf_counter() - started) * 1000
        row.decision = verdict.decision
        row.changed = verdict.text != row.text
        row.reasons = list(verdict.reasons)


async def run_checks_alone(rows: list[Row]) -> dict[str, dict[str, Any]]:
    """Each offline check of the default pipeline on the original text: flags and latency."""
    from bots.verification.api import pipeline_for, resolve_policy

    checks = pipeline_for(resolve_policy(None)).checks
    context = VerificationContext()
    out: dict[str, dict[str, Any]] = {}
    for check in checks:
        flagged: list[bool] = []
        times: list[float] = []
        for row in rows:
            started = time.perf_counter()
            result = await check.run(row.text, context)
            times.append((time.perf_counter() - started) * 1000)
            flagged.append(result.action.value != "pass")
        out[check.name] = {"flagged": flagged, "ms": times}
    return out


def responsible(check: str, category: str) -> bool:
    return any(category.startswith(prefix) for prefix in RESPONSIBLE.get(check, ()))


def summarize(rows: list[Row]) -> dict[str, Any]:
    """The figures the targets apply to."""
    harmful = [r for r in rows if r.harmful]
    benign = [r for r in rows if not r.harmful]
    return {
        "block_recall": round(sum(r.caught for r in harmful) / len(harmful), 4) if harmful else 0.0,
        "false_positive_rate": round(sum(r.false_positive for r in benign) / len(benign), 4) if benign else 0.0,
        "p99_ms": round(percentile([r.ms for r in rows], 99), 3),
        "messages": len(rows),
    }


def meets_targets(summary: dict[str, Any]) -> bool:
    return (
        summary["block_recall"] >= TARGETS["block_recall"]
        and summary["false_positive_rate"] <= TARGETS["false_positive_rate"]
        and summary["p99_ms"] <= TARGETS["p99_ms"]
    )


def report(rows: list[Row], alone: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Print the tables to stderr; return the summary."""
    out = sys.stderr
    harmful = [r for r in rows if r.harmful]
    benign = [r for r in rows if not r.harmful]
    times = [r.ms for r in rows]

    print(f"\n{len(rows)} messages: {len(benign)} benign, {len(harmful)} harmful", file=out)
    print("\nper category (whole pipeline)", file=out)
    print(f"  {'category':<22}{'n':>5}{'recall':>8}   decisions", file=out)
    by_category: dict[str, list[Row]] = defaultdict(list)
    for row in harmful:
        by_category[row.category].append(row)
    for category in sorted(by_category):
        group = by_category[category]
        recall = sum(r.caught for r in group) / len(group)
        decisions = ", ".join(f"{d} {n}" for d, n in Counter(r.decision for r in group).most_common())
        print(f"  {category:<22}{len(group):>5}{recall:>8.2f}   {decisions}", file=out)
    fp_by_style: Counter[str] = Counter(r.category for r in benign if r.false_positive)
    style_n: Counter[str] = Counter(r.category for r in benign)
    print("\nbenign by style: false-positive rate", file=out)
    for style in sorted(style_n):
        print(f"  {style:<22}{style_n[style]:>5}{fp_by_style[style] / style_n[style]:>8.3f}", file=out)

    print("\nper check, each run alone on the original text", file=out)
    print(f"  {'check':<12}{'flagged':>8}{'precision':>10}{'recall':>8}{'FPR':>8}{'p50 ms':>9}{'p99 ms':>9}", file=out)
    for name, data in alone.items():
        flags = data["flagged"]
        flagged = [r for r, f in zip(rows, flags, strict=True) if f]
        true_pos = sum(r.harmful for r in flagged)
        own = [(r, f) for r, f in zip(rows, flags, strict=True) if r.harmful and responsible(name, r.category)]
        recall = f"{sum(f for _, f in own) / len(own):.2f}" if own else "-"
        precision = f"{true_pos / len(flagged):.2f}" if flagged else "-"
        fpr = sum(1 for r in flagged if not r.harmful) / len(benign)
        print(
            f"  {name:<12}{len(flagged):>8}{precision:>10}{recall:>8}{fpr:>8.3f}"
            f"{percentile(data['ms'], 50):>9.3f}{percentile(data['ms'], 99):>9.3f}",
            file=out,
        )

    misses = [r for r in harmful if not r.caught]
    false_positives = [r for r in benign if r.false_positive]
    if misses:
        print("\nmissed harmful messages", file=out)
        for r in misses:
            print(f"  [{r.category}] {r.text[:100]!r}", file=out)
    if false_positives:
        print("\nbenign messages not passed unchanged", file=out)
        for r in false_positives:
            print(f"  [{r.decision}] {r.text[:100]!r}: {'; '.join(r.reasons)[:160]}", file=out)

    summary = summarize(rows)
    print(
        f"\nlatency over all messages: p50 {percentile(times, 50):.3f} ms, p99 {summary['p99_ms']:.3f} ms, "
        f"max {max(times):.3f} ms",
        file=out,
    )
    print(f"targets {TARGETS}: {'met' if meets_targets(summary) else 'NOT met'}", file=out)
    return summary


async def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    args = parser.parse_args(argv)
    rows = load(args.corpus)
    await run_pipeline(rows)
    alone = await run_checks_alone(rows)
    return report(rows, alone)


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
