"""Layer-wise learning-rate decay: the head learns at the full rate, each block below it more slowly.

A small data set fine-tuning a pretrained encoder moves the lower layers, which hold what
pretraining learnt about words, as far as the head it is building; decaying the rate with depth
keeps them closer to where they started. Off (1.0) it must be the optimizer it always was, or the
shipped model's recipe would stop reproducing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.cli import _load_plugins, app
from model.charcnn import CharCNN, CharCNNConfig
from model.testing import build_tiny_base, write_reviews_csv
from model.train import TrainArgs, _optimizer, layer_depths
from model.transformer import build_classifier


def test_depth_counts_blocks_down_from_the_head_with_the_embeddings_last() -> None:
    names = [
        "bert.embeddings.word_embeddings.weight",
        "bert.encoder.layer.0.attention.self.query.weight",
        "bert.encoder.layer.1.output.dense.bias",
        "bert.encoder.layer.11.output.LayerNorm.weight",
        "bert.pooler.dense.weight",
        "classifier.weight",
    ]

    assert layer_depths(names) == {
        "bert.embeddings.word_embeddings.weight": 13,
        "bert.encoder.layer.0.attention.self.query.weight": 12,
        "bert.encoder.layer.1.output.dense.bias": 11,
        "bert.encoder.layer.11.output.LayerNorm.weight": 1,
        "bert.pooler.dense.weight": 0,
        "classifier.weight": 0,
    }


def test_a_model_without_numbered_blocks_is_all_head() -> None:
    names = [name for name, _ in CharCNN(CharCNNConfig(num_labels=3)).named_parameters()]
    assert set(layer_depths(names).values()) == {0}


@pytest.mark.parametrize("value", [0.0, -0.5, 1.5])
def test_a_decay_outside_zero_to_one_is_refused(value: float) -> None:
    with pytest.raises(ValueError, match="layer_lr_decay must be above 0 and at most 1"):
        TrainArgs.from_dict({"output_dir": "out", "layer_lr_decay": value})


def test_each_group_learns_at_the_rate_of_its_depth(tmp_path: Path) -> None:
    model, _ = build_classifier(str(build_tiny_base(tmp_path / "base")), ("negative", "neutral", "positive"))
    args = TrainArgs(output_dir=str(tmp_path / "out"), learning_rate=1e-3, layer_lr_decay=0.5, warmup_ratio=0.0)

    optimizer, _ = _optimizer(model, args, total_steps=10)

    rate = {id(param): group["lr"] for group in optimizer.param_groups for param in group["params"]}
    named = dict(model.named_parameters())
    assert rate[id(named["classifier.weight"])] == pytest.approx(1e-3)
    assert rate[id(named["bert.encoder.layer.1.attention.self.query.weight"])] == pytest.approx(5e-4)
    assert rate[id(named["bert.encoder.layer.0.attention.self.query.weight"])] == pytest.approx(2.5e-4)
    assert rate[id(named["bert.embeddings.word_embeddings.weight"])] == pytest.approx(1.25e-4)
    assert sum(len(group["params"]) for group in optimizer.param_groups) == len(named)


def test_without_decay_the_optimizer_is_the_two_groups_it_always_was(tmp_path: Path) -> None:
    """Same groups in the same order: AdamW's updates, and so the default recipe, stay bit for bit."""
    model, _ = build_classifier(str(build_tiny_base(tmp_path / "base")), ("negative", "neutral", "positive"))

    optimizer, _ = _optimizer(model, TrainArgs(output_dir=str(tmp_path / "out")), total_steps=10)

    decayed, plain = optimizer.param_groups
    assert (decayed["weight_decay"], plain["weight_decay"]) == (0.01, 0.0)
    assert all(param.ndim == 2 for param in decayed["params"])
    order = [id(param) for param in model.parameters()]
    for group in (decayed, plain):
        positions = [order.index(id(param)) for param in group["params"]]
        assert positions == sorted(positions)


def test_the_cli_option_reaches_the_check_before_any_training(tmp_path: Path) -> None:
    _load_plugins()
    data = write_reviews_csv(tmp_path / "train.csv", 30)

    result = CliRunner().invoke(
        app, ["train", "--train", str(data), "-o", str(tmp_path / "m"), "--layer-lr-decay", "1.2"]
    )

    assert result.exit_code == 2, result.output
    assert "layer_lr_decay must be above 0 and at most 1, not 1.2" in result.output
    assert not (tmp_path / "m").exists()
