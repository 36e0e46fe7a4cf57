"""``alt-profanity-check``'s offensive-language classifier, evaluated without scikit-learn's overhead.

The package ships its trained model inside the wheel (a TF-IDF vectoriser and five calibrated
linear SVMs), so nothing is downloaded. Its own ``predict_prob`` costs about 6 ms a message, most
of it input validation; the model is linear, so the same probability is computed here in plain
Python from the fitted weights in a few microseconds. The weights are read once per process.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections import Counter
from dataclasses import dataclass

log = logging.getLogger(__name__)

_TOKEN = re.compile(r"(?u)\b\w\w+\b")  # the vectoriser's token_pattern


@dataclass(frozen=True)
class _Fold:
    weights: dict[int, float]
    intercept: float
    #: Platt scaling: p = 1 / (1 + exp(a * decision + b)).
    a: float
    b: float


class ProfanityModel:
    """P(offensive) for one message, equal to ``profanity_check.predict_prob`` to 1e-9."""

    def __init__(self, vocabulary: dict[str, int], idf: list[float], stop_words: frozenset[str], folds: list[_Fold]):
        self.vocabulary = vocabulary
        self.idf = idf
        self.stop_words = stop_words
        self.folds = folds

    def probability(self, text: str) -> float:
        counts = Counter(
            index
            for token in _TOKEN.findall(text.lower())
            if token not in self.stop_words and (index := self.vocabulary.get(token)) is not None
        )
        features = {index: count * self.idf[index] for index, count in counts.items()}
        norm = math.sqrt(sum(v * v for v in features.values())) or 1.0
        total = 0.0
        for fold in self.folds:
            decision = fold.intercept + sum(fold.weights.get(i, 0.0) * v for i, v in features.items()) / norm
            total += 1.0 / (1.0 + math.exp(fold.a * decision + fold.b))
        return total / len(self.folds)

    @classmethod
    def load(cls) -> ProfanityModel:
        """Read the fitted weights shipped in the ``alt-profanity-check`` package."""
        from profanity_check import profanity_check as shipped

        vectorizer, model = shipped.vectorizer, shipped.model
        vocabulary = {str(k): int(v) for k, v in vectorizer.vocabulary_.items()}
        idf = [float(x) for x in vectorizer.idf_]
        stop_words = frozenset(vectorizer.get_stop_words() or ())
        folds = []
        for calibrated in model.calibrated_classifiers_:
            estimator = calibrated.estimator
            coef = estimator.coef_.ravel()
            weights = {int(i): float(coef[i]) for i in coef.nonzero()[0]}
            calibrator = calibrated.calibrators[0]
            folds.append(_Fold(weights, float(estimator.intercept_[0]), float(calibrator.a_), float(calibrator.b_)))
        return cls(vocabulary, idf, stop_words, folds)


_shared: ProfanityModel | None = None
_loaded = False
_lock = threading.Lock()


def shared_model() -> ProfanityModel | None:
    """The process-wide model, loaded on first use; None when the package is not installed."""
    global _shared, _loaded
    if not _loaded:
        with _lock:
            if not _loaded:
                try:
                    _shared = ProfanityModel.load()
                except Exception as error:  # noqa: BLE001 - an unusable model means rules only
                    log.warning("profanity classifier unavailable, using word lists and patterns only: %s", error)
                    _shared = None
                _loaded = True
    return _shared
