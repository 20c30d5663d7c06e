"""``binary_files: pair``: a binary file in a three-class model trains negative against positive only.

A movie-review sentence labelled positive says the text is not negative; it does not say the
text is not neutral. Mapped onto three classes it teaches exactly that, and the shipped model
learnt to call mild company reviews negative. In pair mode such rows never touch the neutral
logit, in the loss or in validation.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from model.data import DataSource, LabeledData, concat, stratified_split
from model.testing import build_tiny_base, write_reviews_csv
from model.train import TrainArgs, finalize, pair_masked_logits, train

STARS3 = ("negative", "neutral", "positive")


def _data(count: int, flagged: bool) -> LabeledData:
    labels = [0, 2] * (count // 2)
    texts = [f"{'flagged' if flagged else 'plain'} review {i}" for i in range(count)]
    return LabeledData(texts, labels, STARS3, polarity_only=[flagged] * count if flagged else [])


def test_neutral_is_ruled_out_on_the_flagged_rows_only() -> None:
    data = LabeledData(["a", "b", "c"], [0, 2, 1], STARS3, polarity_only=[True, False, False])
    logits = np.array([[1.0, 5.0, 2.0], [1.0, 5.0, 2.0], [1.0, 5.0, 2.0]], dtype=np.float32)

    masked = pair_masked_logits(logits, data)

    assert [int(k) for k in masked.argmax(axis=1)] == [2, 1, 1]
    assert masked[0, 0] == 1.0
    assert masked[0, 2] == 2.0
    assert logits[0, 1] == 5.0  # the input is not modified


def test_unflagged_data_and_binary_models_are_left_alone() -> None:
    logits = np.array([[1.0, 5.0, 2.0]], dtype=np.float32)
    assert pair_masked_logits(logits, LabeledData(["a"], [0], STARS3)) is logits
    binary = LabeledData(["a"], [0], ("negative", "positive"), polarity_only=[True])
    assert pair_masked_logits(logits[:, :2], binary).tolist() == [[1.0, 5.0]]


def test_the_flags_follow_their_rows_through_concat_and_split() -> None:
    mixed = concat([_data(40, flagged=True), _data(20, flagged=False)])
    assert mixed.flags() == [True] * 40 + [False] * 20

    train, validation = stratified_split(mixed, [0.25], seed=1)

    for part in (train, validation):
        assert part.flags() == [text.startswith("flagged") for text in part.texts]
    assert any(validation.flags())
    assert not all(validation.flags())
    assert concat([_data(4, flagged=False)]).polarity_only == []


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="binary_files must be one of mapped, pair, not 'both'"):
        TrainArgs(output_dir="x", binary_files="both")  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_base(tmp_path_factory.mktemp("pair") / "base")


def _args(tiny_base: Path, tmp_path: Path, mode: str) -> TrainArgs:
    binary = write_reviews_csv(tmp_path / "binary.csv", 120, seed=5, labels=2)
    return TrainArgs(
        output_dir=str(tmp_path / mode),
        train=[DataSource(str(binary), name="polarity", source_scheme="binary")],
        base_model=str(tiny_base),
        binary_files=mode,  # type: ignore[arg-type]
        max_length=32,
        epochs=1,
        batch_size=16,
        learning_rate=1e-3,
        seed=0,
        progress=False,
        num_threads=1,
    )


def _neutral_bias(artifact: Path) -> float:
    from safetensors.torch import load_file

    return float(load_file(str(artifact / "model.safetensors"))["classifier.bias"][1])


def test_a_binary_file_trained_as_a_pair_teaches_the_neutral_logit_nothing(tiny_base: Path, tmp_path: Path) -> None:
    """BERT's head starts with zero biases: mapped rows push neutral's down, pair rows never touch it."""
    pair = _args(tiny_base, tmp_path, "pair")
    mapped = _args(tiny_base, tmp_path, "mapped")

    card = train(pair)
    train(mapped)

    assert _neutral_bias(Path(pair.output_dir)) == 0.0
    assert _neutral_bias(Path(mapped.output_dir)) < 0.0
    assert card.training["binary_files"] == "pair"
    # Validation judged the polarity rows between negative and positive: no neutral prediction.
    assert card.metrics["validation"]["confusion_matrix"][0][1] == 0
    assert card.metrics["validation"]["confusion_matrix"][2][1] == 0


def test_finalizing_in_the_other_mode_is_refused(tiny_base: Path, tmp_path: Path) -> None:
    """The mode decides which validation rows the temperature is fitted on."""
    args = _args(tiny_base, tmp_path, "pair")
    train(args)

    with pytest.raises(ValueError, match="binary_files 'pair' \\(asked: 'mapped'\\)"):
        finalize(replace(args, binary_files="mapped"))
