"""Classification metrics and calibration, in numpy so evaluation needs no extra library.

Macro-F1 is the headline number because the product reviews are three-quarters positive: a
model that always says "positive" has 77% accuracy and a macro-F1 of 0.29.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from model.scoring import softmax

IntArray = npt.NDArray[np.integer]


def confusion_matrix(truth: Sequence[int], predicted: Sequence[int], num_classes: int) -> list[list[int]]:
    """Rows are true classes, columns predicted ones."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    for t, p in zip(truth, predicted, strict=True):
        matrix[t, p] += 1
    return [[int(v) for v in row] for row in matrix]


def classification_report(truth: Sequence[int], predicted: Sequence[int], labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1 (over classes present in ``truth``), per-class precision/recall/F1/support."""
    matrix = np.array(confusion_matrix(truth, predicted, len(labels)), dtype=np.float64)
    per_class: dict[str, dict[str, float]] = {}
    f1s = []
    for k, name in enumerate(labels):
        tp = matrix[k, k]
        support = matrix[k].sum()
        precision = tp / matrix[:, k].sum() if matrix[:, k].sum() else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {
            "precision": round(float(precision), 4),
            "recall": round(float(recall), 4),
            "f1": round(float(f1), 4),
            "support": int(support),
        }
        if support:
            f1s.append(f1)
    total = matrix.sum()
    return {
        "n": int(total),
        "accuracy": round(float(np.trace(matrix) / total), 4) if total else 0.0,
        "macro_f1": round(float(np.mean(f1s)), 4) if f1s else 0.0,
        "per_class": per_class,
        "confusion_matrix": [[int(v) for v in row] for row in matrix],
        "labels": list(labels),
    }


def expected_calibration_error(probs: npt.ArrayLike, truth: Sequence[int], bins: int = 15) -> float:
    """ECE of the top-label confidence over equal-width bins (Guo et al. 2017)."""
    p = np.asarray(probs, dtype=np.float64)
    if p.size == 0:
        return 0.0
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == np.asarray(truth)).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for low, high in itertools.pairwise(edges):
        mask = (confidence > low) & (confidence <= high)
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


def negative_log_likelihood(logits: npt.ArrayLike, truth: Sequence[int], temperature: float) -> float:
    p = softmax(np.asarray(logits, dtype=np.float64), temperature)
    picked = p[np.arange(len(truth)), np.asarray(truth)]
    return float(-np.log(np.clip(picked, 1e-12, 1.0)).mean())


def fit_temperature(logits: npt.ArrayLike, truth: Sequence[int]) -> float:
    """The temperature minimising validation NLL: a coarse log-spaced grid, then a golden-section refine.

    One scalar, so a grid is as good as an optimiser and cannot diverge.
    """
    values = np.asarray(logits, dtype=np.float64)
    if len(truth) == 0:
        return 1.0
    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 61))
    losses = [negative_log_likelihood(values, truth, t) for t in grid]
    best = int(np.argmin(losses))
    low, high = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    ratio = (np.sqrt(5) - 1) / 2
    for _ in range(40):
        a = high - ratio * (high - low)
        b = low + ratio * (high - low)
        if negative_log_likelihood(values, truth, a) < negative_log_likelihood(values, truth, b):
            high = b
        else:
            low = a
    return round(float((low + high) / 2), 4)


def binary_view(truth: Sequence[int], probs: npt.ArrayLike, labels: Sequence[str]) -> tuple[list[int], list[int]]:
    """Map three-class truth and probabilities onto negative/positive; rows whose truth is neutral are dropped.

    A three-class model predicts positive when P(positive) >= P(negative), i.e. when its expected
    positivity is at least one half.
    """
    p = np.asarray(probs, dtype=np.float64)
    neg, pos = labels.index("negative"), labels.index("positive")
    kept_truth, kept_pred = [], []
    for row, t in enumerate(truth):
        name = labels[t]
        if name == "neutral":
            continue
        kept_truth.append(0 if name == "negative" else 1)
        kept_pred.append(1 if p[row, pos] >= p[row, neg] else 0)
    return kept_truth, kept_pred
