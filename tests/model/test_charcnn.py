"""The char-CNN: shapes, a training step that lowers the loss, and its Scorer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from core.config import ModelSettings
from model import load_scorer
from model.charcnn import ALPHABET, CharCNN, CharCNNConfig, encode_chars, pad_chars
from model.testing import write_reviews_csv

TINY = CharCNNConfig(num_labels=3, max_length=160, channels=16, hidden=32, dropout=0.1)


def test_the_alphabet_has_the_papers_seventy_symbols() -> None:
    assert len(ALPHABET) == len(set(ALPHABET)) == 70


def test_forward_maps_a_batch_of_texts_to_one_logit_row_each() -> None:
    model = CharCNN(TINY)
    ids = pad_chars(encode_chars(["Great!", "awful 😡 " * 50, ""], TINY.max_length), TINY.max_length)
    assert ids.shape == (3, 160)
    assert model(ids).shape == (3, 3)


def test_too_short_a_max_length_is_refused() -> None:
    with pytest.raises(ValueError, match="too short"):
        CharCNN(CharCNNConfig(max_length=100))


def test_a_training_step_lowers_the_loss() -> None:
    torch.manual_seed(0)
    model = CharCNN(TINY)
    ids = pad_chars(encode_chars(["love it great"] * 8 + ["awful terrible"] * 8, 160), 160)
    target = torch.tensor([2] * 8 + [0] * 8)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(5):
        loss = torch.nn.functional.cross_entropy(model(ids), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_a_trained_charcnn_artifact_scores_through_the_same_interface(tmp_path: Path) -> None:
    from model.data import DataSource
    from model.train import TrainArgs, train

    data = write_reviews_csv(tmp_path / "r.csv", 240)
    card = train(
        TrainArgs(
            output_dir=str(tmp_path / "cnn"),
            train=[DataSource(str(data))],
            architecture="charcnn",
            max_length=160,
            epochs=2,
            batch_size=16,
            learning_rate=1e-3,
            charcnn={"channels": 16, "hidden": 32, "dropout": 0.1},
            progress=False,
            num_threads=1,
        )
    )
    assert card.architecture == "charcnn"
    assert json.loads((tmp_path / "cnn" / "charcnn_config.json").read_text())["channels"] == 16
    scorer = load_scorer(tmp_path / "cnn", ModelSettings(device="cpu"))
    scores = scorer.predict(["love it", "awful", ""])
    assert [s.model_version for s in scores] == [card.version] * 3
    assert scorer.count_tokens(["a", "bb"]) == [160, 160]


def test_the_charcnn_scorer_runs_the_variant_it_is_asked_for(tmp_path: Path) -> None:
    """It ran fp32 whatever MODEL_VARIANT said; bf16 now autocasts, and a variant it has no path for is refused."""
    from model.artifact import ArtifactError, ModelCard
    from model.charcnn import CharCNNScorer

    card = ModelCard(architecture="charcnn", labels=["negative", "neutral", "positive"], max_length=TINY.max_length)
    model = CharCNN(TINY)
    texts = ["love it", "awful, broken on arrival", "fine I guess"]

    fp32 = CharCNNScorer(model, card, "cpu", "fp32")
    bf16 = CharCNNScorer(model, card, "cpu", "bf16")

    assert (bf16.variant, bf16.device) == ("bf16", "cpu")
    np.testing.assert_allclose(bf16.logits(texts), fp32.logits(texts), atol=0.05)
    with pytest.raises(ArtifactError, match="not available for the char-CNN"):
        CharCNNScorer(model, card, "cpu", "onnx-int8")
