"""Evaluate a scorer on a labeled set: metrics, confusion matrix, calibration, in any label scheme.

A three-class model can be judged on a binary file: it predicts positive when P(positive) >=
P(negative). A binary model judged on a three-class file skips the neutral rows. Results are a
plain dict (saved as JSON) plus an optional confusion-matrix PNG.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from model.data import LabeledData
from model.metrics import classification_report, expected_calibration_error, fit_temperature
from model.scorer import BatchedScorer
from model.scoring import softmax


def predictions_in_scheme(
    probs: npt.NDArray[np.float64], model_labels: Sequence[str], data: LabeledData
) -> tuple[list[int], list[int], list[int], list[str]]:
    """(kept row indices, truth, predicted, label names) with truth and predicted indices into those names.

    The names are the data's, except for a binary model on a three-class file, where both sides
    are in the model's two labels: whether that file happens to hold neutral rows must not change
    what the indices mean.
    """
    data_labels = list(data.label_names)
    model_labels = list(model_labels)
    if data_labels == model_labels:
        return list(range(len(data))), list(data.labels), [int(k) for k in probs.argmax(axis=1)], data_labels
    if set(data_labels) <= set(model_labels):  # e.g. binary file, three-class model
        neg, pos = model_labels.index("negative"), model_labels.index("positive")
        predicted = [data_labels.index("positive" if p[pos] >= p[neg] else "negative") for p in probs]
        return list(range(len(data))), list(data.labels), predicted, data_labels
    # three-class file, binary model: neutral truth cannot be judged
    kept = [i for i, y in enumerate(data.labels) if data_labels[y] in model_labels]
    truth = [model_labels.index(data_labels[data.labels[i]]) for i in kept]
    predicted = [int(probs[i].argmax()) for i in kept]
    return kept, truth, predicted, model_labels


def evaluate_logits(
    logits: npt.NDArray[np.float32],
    data: LabeledData,
    model_labels: Sequence[str],
    temperature: float = 1.0,
) -> dict[str, Any]:
    """Metrics in the data's scheme (a binary model's own on a three-class file); ECE when the schemes match.

    ECE is reported uncalibrated and at ``temperature``.
    """
    probs = softmax(logits, temperature)
    kept, truth, predicted, names = predictions_in_scheme(probs, model_labels, data)
    report = classification_report(truth, predicted, names)
    report["label_scheme"] = "binary" if len(names) == 2 else "stars3"
    if len(kept) < len(data):  # rows whose label the model cannot predict, e.g. neutral for a binary model
        judged = set(kept)
        left_out = Counter(data.label_names[y] for i, y in enumerate(data.labels) if i not in judged)
        report["not_judged"] = dict(sorted(left_out.items()))
    if list(data.label_names) == list(model_labels):
        report["ece_uncalibrated"] = round(expected_calibration_error(softmax(logits, 1.0), data.labels), 4)
        report["ece"] = round(expected_calibration_error(probs, data.labels), 4)
        report["temperature"] = temperature
    return report


def calibrate(logits: npt.NDArray[np.float32], truth: Sequence[int]) -> dict[str, float]:
    """Fit the temperature on validation logits and report ECE before and after."""
    temperature = fit_temperature(logits, truth)
    return {
        "temperature": temperature,
        "ece_before": round(expected_calibration_error(softmax(logits, 1.0), truth), 4),
        "ece_after": round(expected_calibration_error(softmax(logits, temperature), truth), 4),
        "n": len(truth),
    }


def evaluate_scorer(scorer: BatchedScorer, data: LabeledData) -> dict[str, Any]:
    return evaluate_logits(scorer.logits(data.texts), data, scorer.labels, scorer.card.temperature)


def save_report(report: dict[str, Any], directory: Path, name: str = "eval") -> dict[str, Path]:
    """Write ``NAME.json`` and the confusion matrix as ``NAME_confusion.png``; returns the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / f"{name}.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    png_path = directory / f"{name}_confusion.png"
    plot_confusion(report["confusion_matrix"], report["labels"], png_path, title=name)
    return {"json": json_path, "png": png_path}


def plot_confusion(matrix: Sequence[Sequence[int]], labels: Sequence[str], path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(4 + len(labels) * 0.3, 3.5 + len(labels) * 0.3))
    ax.imshow(values, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=30)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for (row, col), value in np.ndenumerate(values):
        colour = "white" if value > values.max() / 2 else "black"
        ax.text(col, row, str(value), ha="center", va="center", color=colour)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
