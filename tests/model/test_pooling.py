"""The transformer head's two inputs: the checkpoint's [CLS] head (the default) and the mean over the tokens."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from core.config import ModelSettings
from model import load_scorer
from model.data import DataSource
from model.quantize import quantize_artifact
from model.testing import build_tiny_base, generate_reviews, write_reviews_csv
from model.train import TrainArgs, train
from model.transformer import POOLING_KEY, MeanPooledClassifier, Pooling, build_classifier, load_classifier


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_base(tmp_path_factory.mktemp("pooling") / "base")


def _logits(model: torch.nn.Module, rows: list[list[int]]) -> np.ndarray:
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    with torch.inference_mode():
        logits: np.ndarray = model(input_ids=ids, attention_mask=mask).logits.numpy()
    return logits


def test_mean_pooling_ignores_padding(tiny_base: Path) -> None:
    model, _ = build_classifier(str(tiny_base), ["negative", "neutral", "positive"], "mean")
    model.eval()
    short, long = [2, 40, 41, 3], [2, 40, 41, 42, 43, 44, 45, 46, 3]

    alone = _logits(model, [short])
    padded_beside_a_longer_one = _logits(model, [short, long])[0]

    np.testing.assert_allclose(padded_beside_a_longer_one, alone[0], atol=1e-5)


def test_a_mean_pooled_artifact_loads_back_to_the_same_logits(tiny_base: Path, tmp_path: Path) -> None:
    model, _ = build_classifier(str(tiny_base), ["negative", "neutral", "positive"], "mean")
    model.eval()
    model.save_pretrained(str(tmp_path))

    loaded = load_classifier(tmp_path).eval()

    assert json.loads((tmp_path / "config.json").read_text())[POOLING_KEY] == "mean"
    assert isinstance(loaded, MeanPooledClassifier)
    rows = [[2, 40, 41, 3], [2, 50, 51, 52, 3]]
    np.testing.assert_allclose(_logits(loaded, rows), _logits(model, rows), atol=1e-6)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_either_head_trains_saves_and_quantizes(tiny_base: Path, tmp_path: Path, pooling: Pooling) -> None:
    from transformers import AutoModelForSequenceClassification

    data = write_reviews_csv(tmp_path / "reviews.csv", 300, seed=3)
    directory = tmp_path / "model"
    args = TrainArgs(
        output_dir=str(directory),
        train=[DataSource(str(data), name="generated")],
        base_model=str(tiny_base),
        pooling=pooling,
        max_length=64,
        epochs=2,
        batch_size=16,
        learning_rate=1e-3,
        progress=False,
        num_threads=1,
    )

    train(args)
    quantize_artifact(directory)

    config = json.loads((directory / "config.json").read_text())
    if pooling == "cls":  # the standard layout any Hugging Face user can load
        assert POOLING_KEY not in config
        AutoModelForSequenceClassification.from_pretrained(str(directory), local_files_only=True)
    else:
        assert config[POOLING_KEY] == "mean"
        assert isinstance(load_classifier(directory), MeanPooledClassifier)
    texts = [text for text, _ in generate_reviews(80, seed=7)]
    fp32 = load_scorer(directory, ModelSettings(variant="fp32")).predict(texts)
    int8 = load_scorer(directory, ModelSettings(variant="onnx-int8")).predict(texts)
    # A 32-wide model is int8's worst case and its error depends on the CPU's int8 kernels (one
    # text moved 0.175 on an AVX2-only EPYC, under 0.15 on the VNNI one): bound the typical error.
    errors = [abs(a.sentiment_score - b.sentiment_score) for a, b in zip(fp32, int8, strict=True)]
    assert float(np.mean(errors)) < 0.06
    assert np.mean([a.label == b.label for a, b in zip(fp32, int8, strict=True)]) >= 0.95
    assert sum(a.label == b.label for a, b in zip(fp32, int8, strict=True)) >= 0.9 * len(texts)


def test_an_unknown_pooling_is_refused(tiny_base: Path) -> None:
    with pytest.raises(ValueError, match="pooling must be 'cls' or 'mean'"):
        build_classifier(str(tiny_base), ["negative", "positive"], "max")  # type: ignore[arg-type]


def test_a_classifier_with_another_label_count_serves_as_a_base(tiny_model_dir: Path) -> None:
    """A three-class reviewscore artifact as the base of a binary model: a fresh two-way head,
    not "size mismatch" (the README says any BERT-family directory works)."""
    from model.transformer import build_classifier

    model, _tokenizer = build_classifier(str(tiny_model_dir), ["negative", "positive"])
    assert model.config.num_labels == 2
    assert model.classifier.out_features == 2
