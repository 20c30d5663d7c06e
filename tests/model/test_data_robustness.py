"""Real-world files load: gaps in the labels, float and boolean labels, BOMs, long fields, ragged JSON lines.

Each file is written here, small, in the shape the tool that usually produces it writes
(pandas turns an integer column with one NaN into floats; spreadsheets prefix a BOM).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import pytest

from model.data import DataError, DataSource, infer_scheme, load_labeled


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")  # NaN as JSON's NaN
    return path


def test_a_blank_label_is_skipped_and_counted_not_a_failed_scheme_inference(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("text,label\ngood,1\nno label yet,\nbad,0\n")

    data = load_labeled(DataSource(str(path)), "binary")

    assert (data.texts, data.labels) == (["good", "bad"], [1, 0])
    assert data.sources[0]["skipped"] == {"no label": 1}


def test_float_labels_with_nan_as_pandas_writes_them_read_as_integers(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "r.jsonl",
        [{"text": "good", "label": 1.0}, {"text": "unlabeled", "label": math.nan}, {"text": "bad", "label": 0.0}],
    )

    data = load_labeled(DataSource(str(path)), "stars3")

    assert (data.texts, data.labels) == (["good", "bad"], [2, 0])  # binary 1.0 is positive, not neutral
    assert data.sources[0]["skipped"] == {"no label": 1}


def test_parquet_float_labels_with_nulls_load(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"text": "great", "label": 2.0}, {"text": "meh", "label": 1.0}, {"text": "?", "label": None}]
    rows.append({"text": "awful", "label": 0.0})  # 1 and 2 alone would be refused as ambiguous
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "r.parquet")

    data = load_labeled(DataSource(str(tmp_path / "r.parquet")), "stars3")

    assert [data.label_names[y] for y in data.labels] == ["positive", "neutral", "negative"]


def test_boolean_labels_mean_positive_or_not(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "r.jsonl", [{"text": "recommended", "label": True}, {"text": "avoid", "label": False}])

    data = load_labeled(DataSource(str(path)), "binary")

    assert data.labels == [1, 0]


def test_a_nan_label_is_skipped_when_the_source_scheme_is_given(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "r.jsonl", [{"text": "meh", "label": 1}, {"text": "?", "label": math.nan}])

    data = load_labeled(DataSource(str(path), source_scheme="stars3"), "stars3")

    assert [data.label_names[y] for y in data.labels] == ["neutral"]
    assert data.sources[0]["skipped"] == {"no label": 1}


def test_a_given_source_scheme_keeps_zero_and_one_three_class(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("text,label\nawful,0\nokay,1\n")

    assert load_labeled(DataSource(str(path)), "stars3").labels == [0, 2]  # inferred: binary, 1 is positive
    assert load_labeled(DataSource(str(path), source_scheme="stars3"), "stars3").labels == [0, 1]


def test_missing_and_out_of_range_stars_are_skipped_and_counted(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "r.jsonl",
        [
            {"text": "loved it", "stars": 5},
            {"text": "no rating", "stars": math.nan},
            {"text": "zero stars?", "stars": 0},
            {"text": "hated it", "stars": 1.0},
        ],
    )

    data = load_labeled(DataSource(str(path), label_column=None, stars_column="stars"), "stars3")

    assert (data.texts, data.labels) == (["loved it", "hated it"], [2, 0])
    assert data.sources[0]["skipped"] == {"no label": 1, "stars out of range": 1}


def test_the_scheme_is_inferred_from_present_labels_only() -> None:
    assert infer_scheme(["", "0", "1", None, math.nan, "  "]) == "binary"
    assert infer_scheme([0.0, 1.0, 2.0, math.nan]) == "stars3"
    with pytest.raises(DataError, match="no labels"):
        infer_scheme(["", None])


def test_a_fractional_label_is_an_error_naming_its_row(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("text,label\ngood,1\nhalf,0.5\n")

    with pytest.raises(DataError, match=r"row 2: unknown label '0\.5'"):
        load_labeled(DataSource(str(path), source_scheme="binary"), "binary")


def test_an_unknown_source_scheme_is_refused() -> None:
    with pytest.raises(DataError, match="unknown label scheme 'stars5'"):
        DataSource("r.csv", source_scheme="stars5")  # type: ignore[arg-type]


def test_a_csv_with_a_byte_order_mark_keeps_its_first_column_name(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_text("text,label\ngood,1\nbad,0\n", encoding="utf-8-sig")

    assert load_labeled(DataSource(str(path)), "binary").texts == ["good", "bad"]


def test_a_review_longer_than_csvs_default_field_limit_loads(tmp_path: Path) -> None:
    long_review = "great " * 30_000  # 180,000 characters; csv's default cap is 131,072
    path = tmp_path / "long.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["text", "label"], [long_review, 1], ["bad", 0]])
    limit_before = csv.field_size_limit()

    data = load_labeled(DataSource(str(path)), "binary")

    assert data.texts == [long_review.strip(), "bad"]
    assert csv.field_size_limit() == limit_before  # process-wide, so put back


def test_a_field_beyond_the_csv_limit_is_a_data_error_naming_the_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("model.data._CSV_FIELD_LIMIT", 100)
    path = tmp_path / "long.csv"
    path.write_text(f"text,label\nok,1\n{'x' * 500},0\n")

    with pytest.raises(DataError, match=r"long\.csv: row 2: field larger than field limit"):
        load_labeled(DataSource(str(path)), "binary")


def test_a_json_line_without_the_label_key_is_an_error_naming_row_and_column(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "r.jsonl", [{"text": "good", "label": 1}, {"text": "bad"}])

    with pytest.raises(DataError, match=r"row 2 has no 'label'"):
        load_labeled(DataSource(str(path)), "binary")


def test_nan_text_is_missing_text_not_the_review_nan(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "r.jsonl", [{"text": math.nan, "label": 1}, {"text": "bad", "label": 0}])

    data = load_labeled(DataSource(str(path)), "binary")

    assert data.texts == ["bad"]
    assert data.sources[0]["skipped"] == {"no text": 1}


def test_a_broken_json_line_is_an_error_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"text": "good", "label": 1}\n{"text": "bad", "label": \n')

    with pytest.raises(DataError, match="line 2: not JSON"):
        load_labeled(DataSource(str(path)), "binary")
