"""Metrics across label schemes: per-class numbers are reported under the labels they measure."""

from __future__ import annotations

import numpy as np

from model.base import LABELS_2, LABELS_3
from model.data import LabeledData
from model.evaluate import evaluate_logits


def test_a_binary_model_on_a_three_class_file_without_neutral_rows_reports_binary_metrics() -> None:
    # negative, positive, positive, negative: a three-class file that happens to hold no neutral row
    data = LabeledData(["awful", "great", "lovely", "broken"], [0, 2, 2, 0], LABELS_3)
    logits = np.array([[2.0, -2.0], [-2.0, 2.0], [2.0, -2.0], [2.0, -2.0]], dtype=np.float32)  # "lovely" missed

    report = evaluate_logits(logits, data, LABELS_2)

    assert report["label_scheme"] == "binary"
    assert report["labels"] == ["negative", "positive"]
    assert report["per_class"]["positive"] == {"precision": 1.0, "recall": 0.5, "f1": 0.6667, "support": 2}
    assert report["per_class"]["negative"]["support"] == 2
    assert report["n"] == 4


def test_a_binary_model_on_a_three_class_file_skips_the_neutral_rows() -> None:
    data = LabeledData(["awful", "meh", "great"], [0, 1, 2], LABELS_3)
    logits = np.array([[2.0, -2.0], [0.0, 0.0], [-2.0, 2.0]], dtype=np.float32)

    report = evaluate_logits(logits, data, LABELS_2)

    assert report["labels"] == ["negative", "positive"]
    assert (report["n"], report["accuracy"]) == (2, 1.0)
    assert report["not_judged"] == {"neutral": 1}  # said, not silently left out of n
