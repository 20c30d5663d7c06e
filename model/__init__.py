"""The sentiment model: data, training, evaluation, quantization and the ``Scorer`` the stream uses.

Importing the package is cheap (no torch); ``load_scorer`` imports the backend it needs.
"""

from model.artifact import ArtifactError, ModelCard, read_card
from model.base import LABELS_2, LABELS_3, Score, Scorer, suggested_rating
from model.scorer import DEFAULT_ARTIFACT, BatchedScorer, load_scorer

__all__ = [
    "DEFAULT_ARTIFACT",
    "LABELS_2",
    "LABELS_3",
    "ArtifactError",
    "BatchedScorer",
    "ModelCard",
    "Score",
    "Scorer",
    "load_scorer",
    "read_card",
    "suggested_rating",
]
