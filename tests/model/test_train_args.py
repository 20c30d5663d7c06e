"""Training options are checked before any training: a wrong choice is a clear error, not another model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.cli import _load_plugins, app
from model.testing import write_reviews_csv
from model.train import TrainArgs

_load_plugins()
runner = CliRunner()


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("architecture", "CharCNN", "architecture must be one of transformer, charcnn, not 'CharCNN'"),
        ("label_scheme", "foo", "label_scheme must be one of binary, stars3, not 'foo'"),
        ("precision", "foo", "precision must be one of auto, fp32, bf16, not 'foo'"),
        ("pooling", "max", "pooling must be one of cls, mean, not 'max'"),
    ],
)
def test_a_choice_outside_its_allowed_values_is_refused(option: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainArgs.from_dict({"output_dir": "out", option: value})


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("learning_rate", -1.0, "learning_rate must be at least 0, not -1.0"),
        ("learning_rate", 0.0, "learning_rate must be above 0"),
        ("warmup_ratio", 5.0, "warmup_ratio below 1"),
        ("stop_after_epoch", -3, "stop_after_epoch must be at least 0, not -3"),
        ("class_weight_power", -2.0, "class_weight_power must be at least 0"),
        ("charcnn", {"chanels": 64}, "charcnn takes channels, dropout, hidden, not chanels"),
        ("charcnn", {"max_length": 64}, "charcnn takes channels, dropout, hidden, not max_length"),
    ],
)
def test_a_number_no_training_can_use_is_refused_before_the_data_loads(
    option: str, value: object, message: str
) -> None:
    """A -1 learning rate trained uphill without a word; a charcnn typo was a TypeError traceback
    once every file had been read."""
    with pytest.raises(ValueError, match=message):
        TrainArgs.from_dict({"output_dir": "out", option: value})


@pytest.mark.parametrize("fraction", [0, 0.0, -0.1, 1.0])
def test_training_without_a_validation_split_is_refused(fraction: float) -> None:
    with pytest.raises(ValueError, match="validation_fraction must be above 0 and below 1"):
        TrainArgs(output_dir="out", validation_fraction=fraction)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"path": "a.csv", "text_col": "body"}, r"train entry .*unknown fields \['text_col'\].*text_column"),
        ({"text_column": "body"}, "train entry .*no path"),
        (42, "a train entry must be a path or a table"),
    ],
)
def test_a_data_source_entry_with_a_misspelt_field_is_refused_by_name(entry: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainArgs.from_dict({"output_dir": "out", "train": [entry]})


def test_config_values_in_plain_forms_are_read_as_their_types() -> None:
    """YAML reads 1e-3 as a string: such values are converted, not a TypeError mid-training."""
    args = TrainArgs.from_dict(
        {
            "output_dir": "out",
            "learning_rate": "1e-3",
            "epochs": "2",
            "class_weighting": "false",
            "eval": None,
            "train": [{"path": "a.csv", "max_per_class": "5"}],
        }
    )
    assert (args.learning_rate, args.epochs, args.class_weighting, args.eval) == (0.001, 2, False, [])
    assert args.train[0].max_per_class == 5
    blanks = TrainArgs.from_dict({"output_dir": Path("out"), "max_steps": None, "name": 2024, "train": [Path("a.csv")]})
    assert (blanks.output_dir, blanks.max_steps, blanks.name) == ("out", TrainArgs(output_dir="x").max_steps, "2024")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"output_dir": "out", "batch_size": 8.5}, "batch_size: .*not 8.5"),
        ({"output_dir": "out", "learning_rate": "fast"}, "learning_rate: .*not 'fast'"),
        ({"output_dir": "out", "train": "a.csv"}, "train is a list of data sources"),
        ({"output_dir": "out", "train": [{"path": "a.csv", "max_per_class": "many"}]}, "max_per_class: .*'many'"),
        (["output_dir", "out"], "maps option names to values, not a list"),
    ],
)
def test_config_values_of_the_wrong_type_are_refused_by_name(data: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainArgs.from_dict(data)


def test_an_empty_config_file_takes_every_option_from_the_command_line(tmp_path: Path) -> None:
    config = tmp_path / "empty.yaml"
    config.write_text("", encoding="utf-8")
    assert TrainArgs.from_file(config, output_dir="out").output_dir == "out"


def test_the_cli_turns_a_bad_choice_into_a_usage_error(tmp_path: Path) -> None:
    data = write_reviews_csv(tmp_path / "train.csv", 30)

    result = runner.invoke(app, ["train", "--train", str(data), "-o", str(tmp_path / "m"), "--architecture", "CharCNN"])

    assert result.exit_code == 2, result.output
    assert "architecture must be one of transformer, charcnn" in result.output
    assert not (tmp_path / "m").exists()


def test_a_config_with_an_unknown_precision_is_a_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"output_dir": str(tmp_path / "m"), "train": ["x.csv"], "precision": "fp16"}))

    result = runner.invoke(app, ["train", "--config", str(config)])

    assert result.exit_code == 2, result.output
    assert "precision must be one of auto, fp32, bf16, not 'fp16'" in result.output


def test_a_validation_split_that_rounds_to_nothing_is_a_usage_error(tmp_path: Path) -> None:
    data = write_reviews_csv(tmp_path / "train.csv", 9)  # 3 per class: 10% of 3 rounds to 0

    result = runner.invoke(app, ["train", "--train", str(data), "-o", str(tmp_path / "m"), "--no-progress"])

    assert result.exit_code == 2, result.output
    assert "the validation split is empty (9 training rows, validation_fraction 0.1" in result.output
    assert not (tmp_path / "m" / "model_card.json").exists()


def test_a_review_in_two_training_files_never_lands_in_both_training_and_validation(tmp_path: Path) -> None:
    """Each file is split on its own: a shared text could train from one and validate from the other."""
    from model.data import DataSource
    from model.train import prepare_data

    shared = [f"shared review number {i} was fine" for i in range(40)]
    for name, extra in (("a", 0), ("b", 7)):  # not the same layout, or one seed hides the leak
        own = [f"{name} only positive {i}" for i in range(extra)]
        lines = ["text,label", *(f"{t},1" for t in own + shared), *(f"{name} only {i},0" for i in range(40))]
        (tmp_path / f"{name}.csv").write_text("\n".join(lines) + "\n")
    args = TrainArgs(
        output_dir=str(tmp_path / "out"),
        validation_fraction=0.25,
        seed=3,
        train=[DataSource(str(tmp_path / f"{name}.csv"), source_scheme="binary") for name in ("a", "b")],
    )

    train, validation = prepare_data(args)

    assert validation.texts
    assert not set(train.texts) & set(validation.texts)
