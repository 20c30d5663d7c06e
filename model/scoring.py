"""From logits to ``Score``s: temperature, softmax, expected positivity, rating. Pure numpy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from model.base import Score, suggested_rating

FloatArray = npt.NDArray[np.floating]


def softmax(logits: FloatArray, temperature: float = 1.0) -> npt.NDArray[np.float64]:
    """Row-wise softmax of ``logits / temperature``, computed in float64 for stable probabilities."""
    scaled = np.asarray(logits, dtype=np.float64) / max(temperature, 1e-6)
    scaled -= scaled.max(axis=-1, keepdims=True)
    exp = np.exp(scaled)
    result: npt.NDArray[np.float64] = exp / exp.sum(axis=-1, keepdims=True)
    return result


def positivity(probs: FloatArray, labels: Sequence[str]) -> npt.NDArray[np.float64]:
    """Expected positivity: P(positive) + 0.5 * P(neutral) (the neutral term is absent for binary)."""
    p = np.asarray(probs, dtype=np.float64)
    score = p[:, labels.index("positive")].copy()
    if "neutral" in labels:
        score += 0.5 * p[:, labels.index("neutral")]
    clipped: npt.NDArray[np.float64] = np.clip(score, 0.0, 1.0)
    return clipped


def scores_from_probs(probs: FloatArray, labels: Sequence[str], model_version: str) -> list[Score]:
    """One ``Score`` per row; the label is the most probable class and confidence its probability."""
    p = np.asarray(probs, dtype=np.float64)
    if p.size == 0:
        return []
    best = p.argmax(axis=-1)
    sentiment = positivity(p, labels)
    return [
        Score(
            label=labels[int(k)],
            sentiment_score=float(s),
            confidence=float(p[row, k]),
            suggested_rating=suggested_rating(float(s)),
            model_version=model_version,
        )
        for row, (k, s) in enumerate(zip(best, sentiment, strict=True))
    ]
