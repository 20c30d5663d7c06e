"""The scoring contract between the model and everything that uses it.

Like text-embeddings-inference's ``Backend`` trait: the stream worker, the rescore command and
benchmarks only see ``Scorer``; transformer, ONNX and char-CNN implementations live behind it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

LABELS_3 = ("negative", "neutral", "positive")
LABELS_2 = ("negative", "positive")


@dataclass(frozen=True, slots=True)
class Score:
    """One review's score.

    ``sentiment_score`` is the expected positivity in [0, 1]: P(positive) for a binary model,
    P(positive) + 0.5 * P(neutral) for three classes. ``confidence`` is the calibrated
    probability of ``label``. ``suggested_rating`` maps the score onto 1-5 stars.
    """

    label: str
    sentiment_score: float
    confidence: float
    suggested_rating: int
    model_version: str


@runtime_checkable
class Scorer(Protocol):
    """Anything that turns review texts into ``Score``s, in input order."""

    @property
    def model_version(self) -> str: ...

    def predict(self, texts: Sequence[str]) -> list[Score]: ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens each text will occupy in a forward pass (after truncation); used for batching."""
        ...


def suggested_rating(sentiment_score: float) -> int:
    """Five equal-width bins of the expected positivity: [0, .2) -> 1 ... [.8, 1] -> 5."""
    return min(5, max(1, int(sentiment_score * 5) + 1))
