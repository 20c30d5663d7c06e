"""The model commands where a shell's settings, a failed step or a forgotten option would mislead."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.cli import _load_plugins, app
from model import read_card
from model.data import DataSource, load_labeled
from model.testing import write_reviews_csv

_load_plugins()
runner = CliRunner()


def test_a_failed_quantize_into_a_new_directory_leaves_nothing_behind(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("model.onnx_runtime.quantize_int8", fail)
    out = tmp_path / "out" / "new" / "slim"

    failed = runner.invoke(app, ["quantize", str(tiny_model_dir), "--output", str(out)])
    left_behind = list(tmp_path.iterdir())
    monkeypatch.undo()
    again = runner.invoke(app, ["quantize", str(tiny_model_dir), "--output", str(out)])

    assert failed.exit_code == 2
    assert "disk full" in failed.output
    assert left_behind == [], "nor a half-written copy, nor the directories made for it"
    assert again.exit_code == 0, again.output
    assert [p.name for p in out.parent.iterdir()] == ["slim"]
    assert set(read_card(out).variants) == {"fp32", "onnx-int8"}


def test_a_check_file_that_cannot_be_read_changes_nothing(tiny_model_dir: Path, tmp_path: Path) -> None:
    """The card was rewritten with a new version and the int8 file added before the check failed."""
    artifact = shutil.copytree(tiny_model_dir, tmp_path / "artifact")
    before = {p.name: p.read_bytes() for p in artifact.iterdir() if p.is_file()}
    unlabeled = tmp_path / "unlabeled.csv"
    unlabeled.write_text("text\nGreat\n", encoding="utf-8")

    for check in (tmp_path / "missing.csv", unlabeled):
        result = runner.invoke(app, ["quantize", str(artifact), "--check", str(check)])
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith("error: ")
    assert {p.name: p.read_bytes() for p in artifact.iterdir() if p.is_file()} == before


def test_weights_that_are_no_safetensors_file_are_an_error_line(tiny_model_dir: Path, tmp_path: Path) -> None:
    artifact = shutil.copytree(tiny_model_dir, tmp_path / "artifact")
    (artifact / "model.safetensors").write_bytes(b"\x00" * 100)  # a file cut short
    result = runner.invoke(app, ["quantize", str(artifact)])
    assert result.exit_code == 2, result.output
    assert "fp32 weights" in result.stderr
    assert "Traceback" not in result.output


def test_an_evaluation_file_that_cannot_be_read_fails_before_the_training(tmp_path: Path) -> None:
    train = write_reviews_csv(tmp_path / "train.csv", 60)
    out = tmp_path / "out"
    args = ["train", "--train", str(train), "--eval", str(tmp_path / "missing.csv"), "--output", str(out)]
    result = runner.invoke(app, [*args, "--architecture", "charcnn", "--epochs", "1"])
    assert result.exit_code == 2, result.output
    assert "missing.csv" in result.stderr
    assert not out.exists(), "it trained first, then failed, and left a whole artifact"


def test_quantize_into_an_empty_directory_that_exists_fills_it_in_place(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A mounted volume cannot be removed and replaced: the artifact is moved into it."""
    out = tmp_path / "volume"
    out.mkdir()
    (out / ".volume.0badc0de.partial").mkdir()  # what a run killed mid-way left in it
    inode = out.stat().st_ino

    result = runner.invoke(app, ["quantize", str(tiny_model_dir), "--output", str(out)])

    assert result.exit_code == 0, result.output
    assert out.stat().st_ino == inode
    assert set(read_card(out).variants) == {"fp32", "onnx-int8"}
    assert not [p for p in out.iterdir() if p.name.endswith(".partial")]


def test_quantize_output_naming_the_artifact_itself_quantizes_in_place(tiny_model_dir: Path, tmp_path: Path) -> None:
    model = tmp_path / "m"
    shutil.copytree(tiny_model_dir, model)

    result = runner.invoke(app, ["quantize", str(model), "--output", f"{model}/../m/"])

    assert result.exit_code == 0, result.output
    assert set(read_card(model).variants) == {"fp32", "onnx-int8"}


def test_quantize_output_inside_the_artifact_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    model = tmp_path / "m"
    shutil.copytree(tiny_model_dir, model)

    result = runner.invoke(app, ["quantize", str(model), "--output", str(model / "slim")])

    assert result.exit_code == 2
    assert "inside the artifact" in result.output
    assert not (model / "slim").exists()


def test_eval_runs_at_the_trained_length_whatever_model_max_length_says(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = write_reviews_csv(tmp_path / "d.csv", 30)
    monkeypatch.setenv("MODEL_MAX_LENGTH", "8")  # a worker's shell that truncates hard

    default = runner.invoke(app, ["eval", str(tiny_model_dir), str(data)])
    asked = runner.invoke(app, ["eval", str(tiny_model_dir), str(data), "--max-length", "16"])

    assert default.exit_code == asked.exit_code == 0, (default.output, asked.output)
    assert json.loads(default.stdout)["max_length"] == read_card(tiny_model_dir).max_length
    assert json.loads(asked.stdout)["max_length"] == 16


def test_max_per_class_without_train_files_is_refused_not_dropped(tmp_path: Path) -> None:
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"output_dir": str(tmp_path / "o"), "train": [str(tmp_path / "d.csv")]}))

    result = runner.invoke(app, ["train", "--config", str(config), "--max-per-class", "10"])

    assert result.exit_code == 2
    assert "max_per_class in its train entries" in result.output
    assert not (tmp_path / "o").exists()


def test_zero_one_training_labels_read_into_three_classes_are_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "d.csv"
    data.write_text("text,label\nawful,0\nokay I guess,1\nmeh,1\n", encoding="utf-8")

    with caplog.at_level(logging.WARNING, logger="model.data"):
        inferred = load_labeled(DataSource(str(data)), "stars3")
        told = load_labeled(DataSource(str(data), source_scheme="binary"), "stars3")
        as_binary = load_labeled(DataSource(str(data)), "binary")

    assert inferred.balance() == told.balance() == {"negative": 1, "neutral": 0, "positive": 2}
    assert as_binary.balance() == {"negative": 1, "positive": 2}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "labels 0/1 read as negative/positive" in warnings[0]
