"""Loading labeled files, mapping label schemes, cleaning, deduping and splitting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.text import clean_text
from model.data import (
    DataError,
    DataSource,
    class_weights,
    load_labeled,
    read_rows,
    stars_to_label,
    stratified_split,
)
from model.testing import write_reviews_csv


def test_csv_jsonl_and_parquet_give_the_same_examples(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"text": "good", "label": 1}, {"text": "bad", "label": 0}, {"text": "fine", "label": 1}]
    (tmp_path / "r.csv").write_text("text,label\ngood,1\nbad,0\nfine,1\n")
    (tmp_path / "r.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "r.parquet")
    loaded = [load_labeled(DataSource(str(tmp_path / f"r.{ext}")), "binary") for ext in ("csv", "jsonl", "parquet")]
    assert all(d.texts == ["good", "bad", "fine"] and d.labels == [1, 0, 1] for d in loaded)


def test_csv_rows_a_stray_quote_would_merge_are_skipped_with_a_warning_and_shifted_rows_are_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "open.csv").write_text('text,label\n"Best dress ever,1\nToo small,0\n"Lovely" indeed,1\nFine,1\n')
    (tmp_path / "quoted.csv").write_text('text,label\n"Amazing" is an understatement,1\nbad,0\n')
    (tmp_path / "shift.csv").write_text("text,label\nfine,1\nGreat, really great,1\n")

    with caplog.at_level("WARNING", logger="model.data"):
        opened = load_labeled(DataSource(str(tmp_path / "open.csv")), "binary")
    quoted = load_labeled(DataSource(str(tmp_path / "quoted.csv")), "binary")

    assert opened.texts == ["Fine"]  # not one text "Best dress ever,1\nToo small,0\nLovely"
    assert "skipped unreadable CSV (lines 2-4; a quote not closed where its field ends?)" in caplog.text
    assert quoted.texts == ["Amazing is an understatement", "bad"]  # one line: read leniently, as before
    with pytest.raises(DataError, match="row 2: more fields than the header names"):
        load_labeled(DataSource(str(tmp_path / "shift.csv")), "binary")


def test_a_tsv_row_with_an_unclosed_quote_keeps_the_rows_after_it(tmp_path: Path) -> None:
    (tmp_path / "r.tsv").write_text('text\tlabel\n"Best dress ever\t1\nToo small\t0\nLovely\t1\n')
    data = load_labeled(DataSource(str(tmp_path / "r.tsv")), "binary")
    assert (data.texts, data.labels) == (['"Best dress ever', "Too small", "Lovely"], [1, 0, 1])


def test_stars_map_to_three_classes_or_drop_neutral_for_binary() -> None:
    assert [stars_to_label(s, "stars3") for s in range(1, 6)] == [
        "negative",
        "negative",
        "neutral",
        "positive",
        "positive",
    ]
    assert stars_to_label(3, "binary") is None


def test_a_stars_column_can_label_the_data(tmp_path: Path) -> None:
    path = write_reviews_csv(tmp_path / "r.csv", 30, stars=True)
    data = load_labeled(DataSource(str(path), label_column=None, stars_column="stars"), "stars3")
    assert data.balance() == {"negative": 10, "neutral": 10, "positive": 10}


def test_a_split_keeps_every_class_in_the_first_part_however_large_the_fractions() -> None:
    from model.data import LabeledData

    data = LabeledData(["a", "b", "c", "d", "e"], [0, 0, 1, 1, 2], ["negative", "neutral", "positive"])

    train, validation, test = stratified_split(data, [0.5, 0.45])

    assert sorted(set(train.labels)) == [0, 1, 2]
    assert len(train.labels) + len(validation.labels) + len(test.labels) == 5


def test_half_and_fractional_stars_round_to_the_nearest_star() -> None:
    """int() cut 2.5 down to negative and 3.9 down to neutral."""
    from model.data import parse_stars

    assert [parse_stars(v) for v in ("1", "2.49", "2.5", "3.9", "4.5", "5.0", "0.5", "5.5")] == [
        1,
        2,
        3,
        4,
        5,
        5,
        None,
        None,
    ]


def test_labels_1_and_2_alone_are_refused_not_read_as_neutral_and_positive(tmp_path: Path) -> None:
    """Amazon/Yelp polarity: every negative trained as neutral, and no negative class at all."""
    path = tmp_path / "polarity.csv"
    path.write_text("text,label\nawful,1\ngreat,2\nbad,1\n")

    with pytest.raises(DataError, match="labels 1 and 2 only: map them to 0/1"):
        load_labeled(DataSource(str(path)), "stars3")
    said = DataSource(str(path), source_scheme="stars3")  # 1 really is neutral here
    assert load_labeled(said, "stars3").labels == [1, 2, 1]


def test_binary_labels_map_into_three_classes_and_neutral_is_dropped_for_binary(tmp_path: Path) -> None:
    binary = tmp_path / "b.csv"
    binary.write_text("text,label\nnice,1\nawful,0\n")
    three = tmp_path / "t.csv"
    three.write_text("text,label\nnice,2\nmeh,1\nawful,0\n")
    assert load_labeled(DataSource(str(binary)), "stars3").labels == [2, 0]
    assert load_labeled(DataSource(str(three)), "binary").labels == [1, 0]


def test_cleaning_keeps_case_punctuation_and_emoji() -> None:
    assert clean_text("  Loved it!!! 😀 &amp; <3\x00\n\n so  good ") == "Loved it!!! 😀 & <3 so good"
    for text in ("scraped twice: &amp;lt;3 &amp;amp; more", "&am\x00p;lt;", " a &amp;#8217; b "):
        assert clean_text(clean_text(text)) == clean_text(text)  # training, eval and the Scorer agree
    assert clean_text("scraped twice: &amp;lt;3") == "scraped twice: <3"


def test_duplicates_and_empty_texts_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text('text,label\nsame,1\n"same ",1\n,0\n   ,1\nother,0\n')
    assert load_labeled(DataSource(str(path)), "binary").texts == ["same", "other"]


def test_missing_columns_and_unknown_labels_are_clear_errors(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("body,label\nhi,1\n")
    with pytest.raises(DataError, match="no text column 'text'"):
        load_labeled(DataSource(str(path)), "binary")
    path.write_text("text,label\nhi,maybe\nho,1\n")
    with pytest.raises(DataError, match="cannot infer"):
        load_labeled(DataSource(str(path)), "binary")
    (tmp_path / "x.xlsx").touch()
    with pytest.raises(DataError, match="unsupported format"):
        load_labeled(DataSource(str(tmp_path / "x.xlsx")), "binary")


def test_stratified_split_keeps_class_proportions_and_is_seeded(tmp_path: Path) -> None:
    data = load_labeled(DataSource(str(write_reviews_csv(tmp_path / "r.csv", 300))), "stars3")
    train, val, test = stratified_split(data, [0.1, 0.2], seed=7)
    assert (len(train), len(val), len(test)) == (210, 30, 60)
    assert val.balance() == {"negative": 10, "neutral": 10, "positive": 10}
    assert set(train.texts).isdisjoint(test.texts)
    assert stratified_split(data, [0.1, 0.2], seed=7)[2].texts == test.texts


def test_max_per_class_subsamples_a_balanced_set(tmp_path: Path) -> None:
    path = write_reviews_csv(tmp_path / "r.csv", 300)
    data = load_labeled(DataSource(str(path), max_per_class=20), "stars3")
    assert data.balance() == {"negative": 20, "neutral": 20, "positive": 20}
    assert data.sources[0]["used"] == 60
    assert len(data.sources[0]["sha256"]) == 64


def test_class_weights_favour_rare_classes() -> None:
    weights = class_weights([2] * 8 + [0, 1], 3)
    assert weights[0] == weights[1] > weights[2]


def test_softer_class_weights_keep_the_order_but_shrink_the_gap() -> None:
    labels = [2] * 8 + [0, 1]
    full, soft = class_weights(labels, 3), class_weights(labels, 3, power=0.5)

    assert soft[0] == soft[1] > soft[2]
    assert soft[0] / soft[2] == pytest.approx((full[0] / full[2]) ** 0.5)


@pytest.mark.parametrize("name", ["reviews.csv", "reviews.jsonl"])
def test_a_file_that_is_not_utf8_is_named_in_the_error(tmp_path: Path, name: str) -> None:
    """It was the bare codec message ("'utf-8' codec can't decode byte 0xff…"), naming no file."""
    path = tmp_path / name
    path.write_bytes(b"text,label\n\xff\xfe bad,1\n")
    with pytest.raises(DataError, match=f"{name} is not UTF-8 text"):
        read_rows(path)


def test_a_directory_given_as_a_file_is_called_a_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="a directory, not a file"):
        read_rows(tmp_path)
