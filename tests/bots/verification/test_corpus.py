"""The labelled corpus and the verification targets it guards (``python -m tests.bench.verification``)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from bots.verification.base import VerificationContext
from bots.verification.checks.secrets import SecretsCheck
from bots.verification.checks.toxicity import ToxicityCheck
from tests.bench import verification as bench


@pytest.fixture(scope="module")
def rows() -> list[bench.Row]:
    return bench.load(bench.CORPUS)


def test_the_corpus_is_large_varied_and_well_formed(rows):
    lines = [json.loads(line) for line in bench.CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert all(set(item) >= {"text", "label", "category"} and item["text"].strip() for item in lines)
    benign = [item for item in lines if item["label"] == "benign"]
    harmful = [item for item in lines if item["label"] == "harmful"]
    assert len(benign) >= 300 and len(harmful) >= 150
    assert len({item["text"] for item in lines}) == len(lines), "duplicate messages"
    assert {"es", "pt", "de", "fr", "pl"} <= {item.get("lang") for item in benign}
    styles = {"formal", "casual", "blunt", "emoji", "technical", "sales", "finance", "support"}
    assert styles <= {item["category"] for item in benign}
    categories = Counter(item["category"].split("-")[0] for item in harmful)
    for family in ("threat", "harassment", "hate", "profanity", "pii", "secret", "mass", "leakage", "link"):
        assert categories[family] >= 3, family


async def test_the_pipeline_meets_its_targets(rows):
    await bench.run_pipeline(rows)
    summary = bench.summarize(rows)
    misses = [f"[{r.category}] {r.text[:60]}" for r in rows if r.harmful and not r.caught]
    false_positives = [f"[{r.decision}] {r.text[:60]}" for r in rows if r.false_positive]
    assert summary["messages"] == len(rows)
    assert summary["block_recall"] >= bench.TARGETS["block_recall"], misses
    assert summary["false_positive_rate"] <= bench.TARGETS["false_positive_rate"], false_positives
    # Generous here (shared CI machines); the benchmark reports the real figure.
    assert summary["p99_ms"] <= 5 * bench.TARGETS["p99_ms"]


@pytest.mark.parametrize(
    ("check", "families"),
    [
        (ToxicityCheck, ("threat", "self-harm", "harassment", "hate", "profanity", "sexual")),
        (SecretsCheck, ("secret-",)),
    ],
)
async def test_toxicity_and_secrets_alone_catch_their_categories_without_false_positives(rows, check, families):
    instance = check()
    context = VerificationContext()
    mine = [r for r in rows if r.harmful and r.category.startswith(families)]
    missed = [r.text for r in mine if (await instance.run(r.text, context)).action.value == "pass"]
    flagged = [r.text for r in rows if not r.harmful and (await instance.run(r.text, context)).action.value != "pass"]
    assert len(missed) <= 0.02 * len(mine), missed
    assert len(flagged) <= 0.005 * sum(not r.harmful for r in rows), flagged
