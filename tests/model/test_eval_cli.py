"""``reviewscore eval`` on files whose labels need care: gaps, slices, and 0/1 that may mean neutral."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from core.cli import _load_plugins, app

_load_plugins()
runner = CliRunner()


def _csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("text,label\n" + "".join(f"{text},{label}\n" for text, label in rows), encoding="utf-8")
    return path


def test_a_blank_label_is_skipped_when_evaluating_as_binary(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = _csv(tmp_path / "b.csv", [("love it great", "1"), ("not rated yet", ""), ("awful broken", "0")])

    result = runner.invoke(app, ["eval", str(tiny_model_dir), str(data), "--scheme", "binary"])

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["label_scheme"], report["n"]) == ("binary", 2)
    assert report["skipped"] == {"no label": 1}


def test_limit_does_not_turn_a_three_class_file_binary(tiny_model_dir: Path, tmp_path: Path) -> None:
    # The first four rows hold only 0 and 1; the file's 2s come later.
    rows = [("awful", "0"), ("okay", "1"), ("terrible", "0"), ("fine", "1"), ("great", "2"), ("love", "2")]
    data = _csv(tmp_path / "t.csv", rows)

    result = runner.invoke(app, ["eval", str(tiny_model_dir), str(data), "--limit", "4"])

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["labels"] == ["negative", "neutral", "positive"]
    assert report["per_class"]["neutral"]["support"] == 2
    assert report["per_class"]["positive"]["support"] == 0


def test_zero_one_labels_warn_and_source_scheme_says_they_are_three_class(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = _csv(tmp_path / "t.csv", [("awful", "0"), ("okay", "1"), ("decent", "1")])

    inferred = runner.invoke(app, ["eval", str(tiny_model_dir), str(data)])
    told = runner.invoke(app, ["eval", str(tiny_model_dir), str(data), "--source-scheme", "stars3"])

    assert inferred.exit_code == told.exit_code == 0, (inferred.output, told.output)
    assert "label scheme inferred as binary from values ['0', '1']" in inferred.stderr
    assert json.loads(inferred.stdout)["per_class"]["positive"]["support"] == 2
    assert "warning" not in told.stderr
    assert json.loads(told.stdout)["per_class"]["neutral"]["support"] == 2


def test_one_two_labels_warn_that_they_read_as_neutral_and_positive(tiny_model_dir: Path, tmp_path: Path) -> None:
    """1-based polarity (1 negative, 2 positive) is a common layout that would silently read wrong."""
    data = _csv(tmp_path / "p.csv", [("awful", "1"), ("great", "2")])

    result = runner.invoke(app, ["eval", str(tiny_model_dir), str(data)])

    assert result.exit_code == 0, result.output
    assert "inferred as three-class from values ['1', '2']" in result.stderr


def test_quantize_check_on_a_file_without_the_label_column_is_an_error_naming_the_columns(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    stars = tmp_path / "stars.csv"
    stars.write_text("text,stars\ngreat,5\nawful,1\n", encoding="utf-8")
    out = tmp_path / "q"

    result = runner.invoke(app, ["quantize", str(tiny_model_dir), "--output", str(out), "--check", str(stars)])

    assert result.exit_code == 2, result.output
    assert "no label column 'label'" in result.stderr
    assert "stars" in result.stderr


def test_an_unknown_scheme_name_is_a_usage_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = _csv(tmp_path / "t.csv", [("awful", "0")])

    result = runner.invoke(app, ["eval", str(tiny_model_dir), str(data), "--source-scheme", "stars5"])

    assert result.exit_code == 2
    assert "unknown label scheme 'stars5' (choose from binary, stars3)" in result.output


def test_a_json_line_without_its_label_is_a_one_line_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "r.jsonl"
    data.write_text('{"text": "great", "label": 2}\n{"text": "awful"}\n')

    result = runner.invoke(app, ["eval", str(tiny_model_dir), str(data)])

    assert result.exit_code == 2
    assert "row 2 has no 'label'" in result.output
