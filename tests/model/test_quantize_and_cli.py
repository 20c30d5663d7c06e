"""int8 quantization and the train / eval / quantize commands, end to end on tiny models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.cli import _load_plugins, app
from core.config import ModelSettings
from model import load_scorer, read_card
from model.testing import build_tiny_base, generate_reviews, write_reviews_csv

_load_plugins()
runner = CliRunner()


@pytest.fixture(scope="module")
def int8_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from model.quantize import quantize_artifact

    target = tmp_path_factory.mktemp("int8") / "model"
    quantize_artifact(tiny_model_dir, target)
    return target


def test_int8_agrees_with_fp32_on_the_tiny_model(int8_model_dir: Path) -> None:
    texts = [text for text, _ in generate_reviews(120, seed=99)]
    fp32 = load_scorer(int8_model_dir, ModelSettings(variant="fp32")).predict(texts)
    int8 = load_scorer(int8_model_dir, ModelSettings(variant="onnx-int8")).predict(texts)
    agreement = sum(a.label == b.label for a, b in zip(fp32, int8, strict=True)) / len(texts)
    drift = max(abs(a.sentiment_score - b.sentiment_score) for a, b in zip(fp32, int8, strict=True))
    assert agreement >= 0.95
    assert drift < 0.15


def test_int8_keeps_the_feed_forward_output_projections_in_fp32(int8_model_dir: Path) -> None:
    import onnx

    graph = onnx.load(str(int8_model_dir / "model.int8.onnx")).graph
    float_matmuls = {n.name for n in graph.node if n.op_type == "MatMul"}
    int8_matmuls = [n.name for n in graph.node if n.op_type in {"MatMulInteger", "DynamicQuantizeMatMul"}]
    layers = json.loads((int8_model_dir / "config.json").read_text())["num_hidden_layers"]
    ffn_outputs = {name for name in float_matmuls if name.endswith("/output/dense/MatMul") and "attention" not in name}

    assert len(ffn_outputs) == layers
    assert int8_matmuls, "everything else is quantized"
    assert not any("/output/dense/" in name and "attention" not in name for name in int8_matmuls)


def test_auto_picks_int8_on_cpu_when_the_artifact_has_it(int8_model_dir: Path, tiny_model_dir: Path) -> None:
    card = read_card(int8_model_dir)
    scorer = load_scorer(int8_model_dir, ModelSettings(device="cpu"))
    assert scorer.variant == "onnx-int8"
    assert card.variants == {"fp32": "model.safetensors", "onnx-int8": "model.int8.onnx"}
    assert scorer.model_version == card.version != read_card(tiny_model_dir).version


def test_cli_train_eval_quantize(tmp_path: Path) -> None:
    base = build_tiny_base(tmp_path / "base", max_length=32)
    data = write_reviews_csv(tmp_path / "train.csv", 120)
    binary = write_reviews_csv(tmp_path / "binary.csv", 40, seed=5, labels=2)
    out = tmp_path / "model"
    options = ["--epochs", "1", "--max-length", "32", "--learning-rate", "0.001", "--threads", "1", "--no-progress"]
    result = runner.invoke(
        app,
        ["train", "--train", str(data), "-o", str(out), "--base-model", str(base), "--eval", str(binary), *options],
    )
    assert result.exit_code == 0, result.output
    card = read_card(out)
    assert f"version {card.version}" in result.output
    assert card.metrics["binary"]["label_scheme"] == "binary"

    result = runner.invoke(app, ["eval", str(out), str(binary), "--output", str(tmp_path / "eval")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "eval" / "binary.json").read_text())
    assert report["labels"] == ["negative", "positive"]
    assert report["n"] == 40
    assert (tmp_path / "eval" / "binary_confusion.png").stat().st_size > 1000

    result = runner.invoke(app, ["quantize", str(out), "--check", str(binary)])
    assert result.exit_code == 0, result.output
    check = read_card(out).metrics["quantization_check"]
    assert {"fp32", "onnx-int8", "label_agreement", "accuracy_delta_pt"} <= set(check)


def test_eval_reports_three_class_metrics_with_calibration(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = write_reviews_csv(tmp_path / "test.csv", 60, seed=3)
    result = runner.invoke(app, ["eval", str(tiny_model_dir), str(data)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["per_class"]) == {"negative", "neutral", "positive"}
    assert {"accuracy", "macro_f1", "confusion_matrix", "ece", "ece_uncalibrated", "temperature"} <= set(report)
    assert report["model_version"] == read_card(tiny_model_dir).version


def test_eval_of_a_missing_column_is_a_clear_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("body,label\nhi,1\n")
    result = runner.invoke(app, ["eval", str(tiny_model_dir), str(bad)])
    assert result.exit_code == 2
    assert "no text column" in result.output


@pytest.mark.parametrize("command", [["score", "hello"], ["worker"], ["rescore"]])
def test_a_model_path_without_a_model_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str], database_url: str, kafka_settings: object
) -> None:
    # A real broker (kafka_settings exports it) and database: the commands get as far as the model.
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.delenv("STREAM_SCORER", raising=False)
    result = runner.invoke(app, [*command, "--model", str(tmp_path)])
    assert result.exit_code == 2, (result.output, result.exception)
    assert f"{tmp_path}: not a model artifact" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_train_without_data_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--output", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "--train" in result.output


def test_quantizing_the_char_cnn_is_refused(tmp_path: Path, tiny_model_dir: Path) -> None:
    copy = tmp_path / "m"
    shutil.copytree(tiny_model_dir, copy)
    card = json.loads((copy / "model_card.json").read_text())
    card["architecture"] = "charcnn"
    (copy / "model_card.json").write_text(json.dumps(card))
    result = runner.invoke(app, ["quantize", str(copy)])
    assert result.exit_code == 2
    assert "transformer" in result.output


def test_finalize_only_cards_a_stopped_run_and_calibrates_its_int8_file(tiny_model_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_model_dir, run)
    (run / "model_card.json").unlink()  # as if the run had been stopped after saving its best epoch
    data = write_reviews_csv(tmp_path / "train.csv", 90)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"output_dir": str(run), "train": [str(data)], "max_length": 64, "num_threads": 1}))
    result = runner.invoke(app, ["train", "--config", str(config), "--finalize-only", "--int8"])
    assert result.exit_code == 0, result.output
    card = read_card(run)
    assert set(card.variants) == {"fp32", "onnx-int8"}
    assert card.metrics["validation"]["n"] == 9
    assert card.training["epochs_run"] == json.loads((run / "training_metrics.json").read_text())


def test_finalize_with_other_settings_than_the_run_is_refused_and_leaves_the_card_alone(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """A forgotten --label-scheme rewrote a working model's card with three labels for two-label
    weights (or another max_length) before anything was checked: the model no longer loaded."""
    run = tmp_path / "run"
    shutil.copytree(tiny_model_dir, run)
    before = (run / "model_card.json").read_bytes()
    data = write_reviews_csv(tmp_path / "train.csv", 90)
    args = ["train", "--train", str(data), "--output", str(run), "--finalize-only", "--threads", "1"]

    wrong_length = runner.invoke(app, [*args, "--max-length", "128"])
    wrong_scheme = runner.invoke(app, [*args, "--max-length", "64", "--label-scheme", "binary"])

    assert (wrong_length.exit_code, wrong_scheme.exit_code) == (2, 2)
    assert "was trained with max_length 64 (asked: 128)" in wrong_length.output
    assert "labels ['negative', 'neutral', 'positive'] (asked: ['negative', 'positive'])" in wrong_scheme.output
    assert (run / "model_card.json").read_bytes() == before


def test_config_values_out_of_range_or_clashing_are_one_line_errors(tmp_path: Path) -> None:
    """batch_size 0 was a ZeroDivisionError, a YAML typo a parser traceback, two eval files named
    alike overwrote each other's metrics; --int8 without --finalize-only was silently ignored."""
    data = write_reviews_csv(tmp_path / "d.csv", 30)
    cases = {
        "zero.yaml": f"output_dir: {tmp_path / 'o'}\ntrain: [{data}]\nbatch_size: 0\n",
        "typo.yaml": "output_dir: [unclosed\n",
        "twice.yaml": f"output_dir: {tmp_path}/o\ntrain: [{data}]\neval: [{tmp_path}/a/x.csv, {tmp_path}/b/x.csv]\n",
        "nowhere.yaml": f"train: [{data}]\n",
    }
    said = {}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        result = runner.invoke(app, ["train", "--config", str(tmp_path / name)])
        assert result.exit_code == 2, (name, result.output)
        said[name] = result.output
    int8 = runner.invoke(app, ["train", "--train", str(data), "--output", str(tmp_path / "o"), "--int8"])

    assert "batch_size must be at least 1, not 0" in said["zero.yaml"]
    assert "not valid YAML" in said["typo.yaml"]
    assert "evaluation files need distinct names" in said["twice.yaml"]
    assert "output_dir is missing" in said["nowhere.yaml"]
    assert int8.exit_code == 2
    assert "--int8 goes with --finalize-only" in int8.output


@pytest.mark.parametrize("command", [["score", "hello"], ["worker"], ["rescore"]])
def test_a_model_whose_labels_the_table_cannot_store_is_refused_before_it_scores(
    tiny_model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: list[str],
    database_url: str,
    kafka_settings: object,
) -> None:
    """A `mixed` label failed the table's CHECK row by row: rescore 7x slower and half done, exit 0."""
    model = tmp_path / "mixed"
    shutil.copytree(tiny_model_dir, model)
    card = json.loads((model / "model_card.json").read_text())
    card["labels"] = ["negative", "mixed", "positive"]
    (model / "model_card.json").write_text(json.dumps(card))
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.delenv("STREAM_SCORER", raising=False)

    result = runner.invoke(app, [*command, "--model", str(model)])

    assert result.exit_code == 2, (result.output, result.exception)
    assert "labels ['negative', 'mixed', 'positive']; a scorer's are negative, neutral, positive" in result.output
