"""Batching plans, metrics and calibration: pure functions, no model."""

from __future__ import annotations

import numpy as np
import pytest

from model.base import suggested_rating
from model.batching import padded_tokens, plan_batches
from model.metrics import classification_report, expected_calibration_error, fit_temperature
from model.scoring import positivity, scores_from_probs, softmax


def test_batches_respect_the_token_budget_and_the_count_cap() -> None:
    lengths = [5, 300, 12, 7, 128, 9, 64, 3, 250, 11]
    batches = plan_batches(lengths, max_tokens=512, max_items=3)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) <= 3
        assert len(batch) * max(lengths[i] for i in batch) <= 512


def test_an_item_over_budget_gets_a_batch_of_its_own() -> None:
    assert plan_batches([10, 5000, 10], max_tokens=100, max_items=8) == [[0, 2], [1]]


def test_sorting_by_length_pads_far_less_than_fixed_order() -> None:
    rng = np.random.default_rng(0)
    lengths = [int(x) for x in rng.integers(5, 256, 256)]
    planned = padded_tokens(lengths, plan_batches(lengths, 10**9, 32))
    fixed = padded_tokens(lengths, [list(range(i, i + 32)) for i in range(0, 256, 32)])
    assert planned < 0.7 * fixed


def test_report_has_accuracy_macro_f1_per_class_and_confusion() -> None:
    report = classification_report([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], ["negative", "neutral", "positive"])
    assert report["accuracy"] == pytest.approx(4 / 6, abs=1e-4)
    assert report["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert report["per_class"]["neutral"] == {"precision": 0.5, "recall": 1.0, "f1": 0.6667, "support": 1}
    assert report["macro_f1"] == pytest.approx((0.5 + 0.6667 + 0.8) / 3, abs=1e-3)


def test_temperature_scaling_fixes_an_overconfident_model() -> None:
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 3, 3000)
    logits = rng.normal(0, 1, (3000, 3))
    logits[np.arange(3000), truth] += 1.0  # informative but ...
    logits *= 6.0  # ... far too sharp
    before = expected_calibration_error(softmax(logits), list(truth))
    temperature = fit_temperature(logits, list(truth))
    after = expected_calibration_error(softmax(logits, temperature), list(truth))
    assert temperature > 3
    assert after < 0.03 < before


def test_sentiment_score_is_expected_positivity() -> None:
    probs = np.array([[0.2, 0.4, 0.4], [1.0, 0.0, 0.0]])
    assert positivity(probs, ["negative", "neutral", "positive"]).tolist() == pytest.approx([0.6, 0.0])
    assert positivity(np.array([[0.3, 0.7]]), ["negative", "positive"]).tolist() == pytest.approx([0.7])
    first, second = scores_from_probs(probs, ["negative", "neutral", "positive"], "v1")
    assert (first.label, first.confidence, first.suggested_rating) == ("neutral", 0.4, 4)
    assert (second.label, second.suggested_rating, second.model_version) == ("negative", 1, "v1")


def test_suggested_rating_bins() -> None:
    assert [suggested_rating(x) for x in (0.0, 0.19, 0.2, 0.5, 0.79, 0.8, 1.0)] == [1, 1, 2, 3, 4, 5, 5]
