"""`reviewscore publish`: a file of reviews ends up on the topic, exactly its valid rows."""

from __future__ import annotations

import csv
import json
import os
import re
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from core import publish
from core.cli import app
from core.config import KafkaSettings
from core.messages import ReviewMessage, parse_message
from core.publish import ColumnMap, prepare, read_rows
from tests.fixtures.kafka import consume_all

CSV = """id,review,company,stars,when
1,Fast delivery and friendly staff,Acme,5,2026-11-01T10:00:00Z
2,   ,Acme,1,
3,Never again. Broken on arrival,Globex,1,2026-11-02
4,"Okay, nothing special",Acme,3.0,
5,Loved it,Acme,seven,
"""

JSONL = (
    json.dumps({"text": "Superb", "source": "partner", "rating": 5, "review_id": "a"})
    + "\n{broken json\n"
    + json.dumps(["not", "an", "object"])
    + "\n\n"
    + json.dumps({"text": "Meh", "rating": 3, "review_id": "b"})
    + "\n"
)


def test_prepare_maps_columns_and_reports_bad_lines_with_numbers(tmp_path: Path) -> None:
    path = tmp_path / "reviews.csv"
    path.write_text(CSV, encoding="utf-8")
    columns = ColumnMap(text="review", review_id="id", brand="company", rating="stars", published_at="when")
    prepared = prepare(read_rows(path), columns, "import")
    assert [(line, m.review_id, m.rating, m.brand) for line, m in prepared.messages] == [
        (2, "1", 5, "Acme"),
        (4, "3", 1, "Globex"),
        (5, "4", 3, "Acme"),
    ]
    assert [r.line for r in prepared.rejects] == [3, 6]
    assert "review" in prepared.rejects[0].reason
    assert "rating" in prepared.rejects[1].reason


def test_a_record_spanning_lines_is_reported_at_the_line_it_starts_on(tmp_path: Path) -> None:
    path = tmp_path / "reviews.csv"
    path.write_bytes(
        b'id,review,stars\r\n1,"three\r\nline\nreview",9\r\n2,fine,4\r\n3,"two\rlines",0\r\n4,ok,9,"extra\nfield"\r\n'
    )
    prepared = prepare(read_rows(path), ColumnMap(text="review", review_id="id", rating="stars"), "import")
    assert [r.line for r in prepared.rejects] == [2, 6, 8]  # the last one's extra field spans two lines
    assert [line for line, _ in prepared.messages] == [5]


def test_a_line_of_another_schema_version_is_rejected_not_sent_as_version_1(tmp_path: Path) -> None:
    path = tmp_path / "reviews.jsonl"
    lines = [
        {"schema_version": 2, "text": "hello", "review_id": "a"},
        {"schema_version": 1, "text": "hi"},
        {"text": "x"},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    prepared = prepare(read_rows(path), ColumnMap(), "import")
    assert [(r.line, "schema_version" in r.reason) for r in prepared.rejects] == [(1, True)]
    assert [line for line, _ in prepared.messages] == [2, 3]


@pytest.mark.integration
def test_publish_csv_round_trip_sends_exactly_the_valid_rows(tmp_path: Path, kafka_settings: KafkaSettings) -> None:
    path = tmp_path / "reviews.csv"
    path.write_text(CSV, encoding="utf-8")
    result = CliRunner().invoke(
        app,
        [
            "publish",
            str(path),
            "--source",
            "import",
            "--text-column",
            "review",
            "--id-column",
            "id",
            "--brand-column",
            "company",
            "--rating-column",
            "stars",
            "--date-column",
            "when",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "sent 3, rejected 2, failed 0" in result.stdout
    assert "rejected line 3:" in result.stderr
    assert "rejected line 6:" in result.stderr

    messages = consume_all(kafka_settings, kafka_settings.topic, expected=3)
    assert len(messages) == 3
    by_key = {key: parse_message(value) for key, value, _ in messages}
    assert set(by_key) == {b"import:1", b"import:3", b"import:4"}
    assert by_key[b"import:1"].text == "Fast delivery and friendly staff"
    assert by_key[b"import:3"].brand == "Globex"


@pytest.mark.integration
def test_publish_jsonl_keeps_each_rows_source(tmp_path: Path, kafka_settings: KafkaSettings) -> None:
    path = tmp_path / "reviews.jsonl"
    path.write_text(JSONL, encoding="utf-8")
    result = CliRunner().invoke(app, ["publish", str(path)])
    assert result.exit_code == 0, result.output
    assert "sent 2, rejected 2" in result.stdout
    assert "rejected line 2: bad JSON" in result.stderr
    assert "rejected line 3: expected a JSON object" in result.stderr
    keys = sorted(key for key, _, _ in consume_all(kafka_settings, kafka_settings.topic, expected=2))
    assert keys == [b"cli:b", b"partner:a"]


@pytest.mark.integration
def test_strict_publish_sends_nothing_when_a_line_is_bad(tmp_path: Path, kafka_settings: KafkaSettings) -> None:
    path = tmp_path / "reviews.jsonl"
    path.write_text(JSONL, encoding="utf-8")
    result = CliRunner().invoke(app, ["publish", str(path), "--strict"])
    assert result.exit_code == 1
    assert "nothing sent" in result.stdout
    assert consume_all(kafka_settings, kafka_settings.topic, expected=1, timeout=4) == []


def test_a_file_whose_every_line_is_rejected_is_a_failure(tmp_path: Path) -> None:
    """A wrong --text-column rejects every line: exit 1, not the 0 of a file with a few bad lines.
    Nothing is sent, so no broker is needed to say so."""
    path = tmp_path / "reviews.csv"
    path.write_text(CSV, encoding="utf-8")
    result = CliRunner().invoke(app, ["publish", str(path), "--text-column", "body"])
    assert result.exit_code == 1
    assert "sent 0, rejected 5 (every line was rejected)" in result.stdout


def test_publish_without_a_broker_says_what_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "reviews.jsonl"
    path.write_text(json.dumps({"text": "ok", "source": "user"}) + "\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["publish", str(path)])
    assert result.exit_code != 0
    assert "KAFKA_BOOTSTRAP_SERVERS" in str(result.exception)


def test_each_line_the_broker_never_confirms_is_reported_as_a_failure_of_its_own() -> None:
    """Before, four unconfirmed messages were one failure on "line 0"."""
    unreachable = KafkaSettings(bootstrap_servers="127.0.0.1:1")
    messages = [(line, ReviewMessage(text=f"Review {line}", source="cli")) for line in (2, 3, 5)]

    # As when the broker goes away after answering the check before publishing.
    delivery = publish.publish_messages(messages, unreachable, flush_timeout=1.0, broker_timeout=None)

    assert delivery.sent == 0
    assert [failure.line for failure in delivery.failed] == [2, 3, 5]
    assert all("not confirmed" in failure.reason for failure in delivery.failed)


def test_a_broker_that_does_not_answer_is_said_before_anything_is_sent() -> None:
    unreachable = KafkaSettings(bootstrap_servers="127.0.0.1:1")
    messages = iter([(2, ReviewMessage(text="Review", source="cli"))])
    with pytest.raises(
        publish.BrokerUnavailableError, match=re.escape("cannot publish to 'reviews' at 127.0.0.1:1: no broker")
    ):
        publish.publish_messages(messages, unreachable, broker_timeout=1.0)
    assert next(messages, None) is not None  # not one message was taken


def test_publish_to_an_unreachable_broker_is_one_error_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """It retried every message for librdkafka's five minutes, then called each line unconfirmed."""
    path = tmp_path / "reviews.csv"
    path.write_text("text\nGreat product\nAwful support\n", encoding="utf-8")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    result = CliRunner().invoke(app, ["publish", str(path)])
    assert result.exit_code == 2
    assert "error: cannot publish to 'reviews' at 127.0.0.1:1: no broker answers" in result.stderr
    assert result.stderr.rstrip().endswith("; nothing was sent")


def test_publish_to_the_dead_letter_topic_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "reviews.csv"
    path.write_text("text\nGreat product\n", encoding="utf-8")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    result = CliRunner().invoke(app, ["publish", str(path), "--topic", "reviews.dlq"])
    assert result.exit_code == 2
    assert "error: 'reviews.dlq' is the dead-letter topic (KAFKA_DLQ_TOPIC), not for reviews" in result.stderr


def test_to_kafka_value_is_the_contract_json() -> None:
    key, value = ReviewMessage(text="Hi", source="user").to_kafka()
    assert json.loads(value) == {"schema_version": 1, "text": "Hi", "source": "user"}
    assert key.startswith(b"user:sha256:")


def test_excel_csv_with_a_byte_order_mark_reads_its_first_column(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_text("text,review_id\nGreat value,1\nToo slow,2\n", encoding="utf-8-sig")  # Excel "CSV UTF-8"
    prepared = prepare(read_rows(path), ColumnMap(), "import")
    assert prepared.rejects == []
    assert [(m.review_id, m.text) for _, m in prepared.messages] == [("1", "Great value"), ("2", "Too slow")]


def test_a_tab_separated_file_of_any_name_is_read_as_tsv_with_format_tsv(tmp_path: Path) -> None:
    """`--format tsv` was refused ("unknown format"), and only a `.tsv` suffix chose TSV."""
    path = tmp_path / "export.txt"
    path.write_text("text\tbrand\nGreat value\tAcme\n", encoding="utf-8")

    prepared = prepare(read_rows(path, "tsv"), ColumnMap(), "import")

    assert [(m.text, m.brand) for _, m in prepared.messages] == [("Great value", "Acme")]
    with pytest.raises(ValueError, match="unknown format 'xls' \\(one of csv, tsv, jsonl\\)"):
        list(read_rows(path, "xls"))


def test_an_unclosed_quote_in_a_csv_is_a_rejected_record_not_rows_merged_into_one_text(tmp_path: Path) -> None:
    """Before, rows 2 and 3 became part of review 1's text, and the file read as 0 rejected."""
    path = tmp_path / "quote.csv"
    path.write_text('review_id,text\n1,"Best dress ever\n2,good\n3,"quoted, properly"\n4,fine\n', encoding="utf-8")

    prepared = prepare(read_rows(path), ColumnMap(), "import")

    assert [(r.line, r.reason.split(":")[0]) for r in prepared.rejects] == [
        (2, "unreadable CSV (lines 2-4; a quote not closed where its field ends?)")
    ]
    assert [(line, m.review_id, m.text) for line, m in prepared.messages] == [(5, "4", "fine")]


def test_a_row_with_more_fields_than_the_header_is_rejected_not_shifted(tmp_path: Path) -> None:
    """ "Great, really great" unquoted was sent as text "Great" with brand "really great"."""
    path = tmp_path / "shift.csv"
    path.write_text(
        "text,brand\nGreat, really great,Acme\nFine,Acme,\n", encoding="utf-8"
    )  # a trailing comma is harmless

    prepared = prepare(read_rows(path), ColumnMap(), "import")

    assert [(r.line, r.reason) for r in prepared.rejects] == [
        (2, "1 more field(s) than the header names (an unquoted delimiter in a text?)")
    ]
    assert [(m.text, m.brand) for _, m in prepared.messages] == [("Fine", "Acme")]


def test_a_tsv_text_with_an_unclosed_quote_is_one_review_not_the_rest_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "reviews.tsv"
    path.write_text('text\treview_id\n"Best dress ever\t1\nToo small\t2\n"Comfy" and warm\t3\n', encoding="utf-8")
    prepared = prepare(read_rows(path), ColumnMap(), "import")
    assert prepared.rejects == []
    assert [(line, m.review_id, m.text) for line, m in prepared.messages] == [
        (2, "1", '"Best dress ever'),
        (3, "2", "Too small"),
        (4, "3", '"Comfy" and warm'),
    ]


def test_jsonl_with_a_byte_order_mark_reads_its_first_line(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_text(json.dumps({"text": "First", "review_id": "a"}) + "\n", encoding="utf-8-sig")
    prepared = prepare(read_rows(path), ColumnMap(), "import")
    assert prepared.rejects == []
    assert [m.text for _, m in prepared.messages] == ["First"]


def test_a_field_longer_than_the_csv_default_limit_is_one_rejected_line(tmp_path: Path) -> None:
    default_limit = csv.field_size_limit()
    path = tmp_path / "long.csv"
    path.write_text(f"text,review_id\n{'x' * 200_000},1\nShort and fine,2\n", encoding="utf-8")
    prepared = prepare(read_rows(path), ColumnMap(), "import")
    assert [(r.line, r.reason) for r in prepared.rejects] == [(2, "text: String should have at most 20000 characters")]
    assert [(line, m.review_id) for line, m in prepared.messages] == [(3, "2")]
    assert csv.field_size_limit() == default_limit  # the process-wide limit is given back


def test_a_record_the_csv_module_cannot_read_is_rejected_and_the_file_read_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(publish, "CSV_FIELD_LIMIT", 1_000)
    path = tmp_path / "huge.csv"
    path.write_text(f'text,review_id\nFirst,1\n"{"x" * 5_000}",2\nLast,3\n', encoding="utf-8")
    prepared = prepare(read_rows(path), ColumnMap(), "import")
    assert [(r.line, r.reason) for r in prepared.rejects] == [
        (3, "unreadable CSV: field larger than field limit (1000)")
    ]
    assert [(line, m.text) for line, m in prepared.messages] == [(2, "First"), (4, "Last")]


@pytest.mark.integration
def test_publish_sends_the_rest_of_a_file_with_an_over_long_field(
    tmp_path: Path, kafka_settings: KafkaSettings
) -> None:
    path = tmp_path / "reviews.csv"
    path.write_text(f"text,review_id\n{'x' * 200_000},1\nShort and fine,2\n", encoding="utf-8-sig")
    result = CliRunner().invoke(app, ["publish", str(path), "--source", "import"])
    assert result.exit_code == 0, result.output
    assert "sent 1, rejected 1, failed 0" in result.stdout
    assert "rejected line 2: text: String should have at most 20000 characters" in result.stderr
    keys = [key for key, _, _ in consume_all(kafka_settings, kafka_settings.topic, expected=1)]
    assert keys == [b"import:2"]


def test_jsonl_lines_python_cannot_load_are_rejected_and_the_file_read_on(tmp_path: Path) -> None:
    path = tmp_path / "odd.jsonl"
    lines = ['{"text": "First"}', '{"text": "Big", "rating": ' + "9" * 5_000 + "}", "[" * 100_000, '{"text": "Last"}']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    prepared = prepare(read_rows(path), ColumnMap(), "import")
    assert [(r.line, r.reason.split(":")[0]) for r in prepared.rejects] == [
        (2, "unreadable JSON"),
        (3, "unreadable JSON"),
    ]
    assert [(line, m.text) for line, m in prepared.messages] == [(1, "First"), (4, "Last")]


def test_the_readme_sample_file_gives_what_the_readme_says() -> None:
    """README: `publish core/samples/reviews.csv --text-column review ...` → sent 3, rejected 2."""
    sample = Path(__file__).resolve().parents[2] / "core" / "samples" / "reviews.csv"
    columns = ColumnMap(text="review", review_id="id", brand="company", rating="stars")

    prepared = prepare(read_rows(sample), columns, "cli")

    assert [message.review_key for _, message in prepared.messages] == ["cli:r-101", "cli:r-102", "cli:r-103"]
    assert [reject.line for reject in prepared.rejects] == [5, 6]


def test_a_byte_that_is_not_utf8_rejects_its_row_alone_not_the_whole_file(tmp_path: Path) -> None:
    """One Latin-1 "é" in row 3 ended the whole publish ("error: 'utf-8' codec can't decode")."""
    path = tmp_path / "mixed.csv"
    path.write_bytes(b"text,brand\nGood one,A\nCaf\xe9 au lait,B\nFine,C\n")

    prepared = prepare(read_rows(path), ColumnMap(), "import")

    assert [(r.line, r.reason) for r in prepared.rejects] == [(3, "text: not valid UTF-8 (byte 0xe9 at character 4)")]
    assert [(line, m.text) for line, m in prepared.messages] == [(2, "Good one"), (4, "Fine")]


def test_a_json_escape_for_half_a_character_is_rejected_with_its_field(tmp_path: Path) -> None:
    path = tmp_path / "escape.jsonl"
    path.write_text('{"text": "ok", "brand": "Acme \\ud800"}\n{"text": "Last"}\n', encoding="utf-8")

    prepared = prepare(read_rows(path), ColumnMap(), "import")

    assert [(r.line, r.reason) for r in prepared.rejects] == [(1, "brand: not valid UTF-8 (U+D800 at character 6)")]
    assert [m.text for _, m in prepared.messages] == ["Last"]


def test_a_file_with_no_rows_sends_nothing_and_needs_no_broker(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("text,brand\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["publish", str(path)])
    assert result.exit_code == 0, result.output
    assert "sent 0, rejected 0, failed 0 (no reviews in the file)" in result.stdout


def test_standard_input_needs_a_format(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["publish", "-"], input='{"text": "hi"}\n')
    assert result.exit_code == 2
    assert "reading standard input needs --format" in result.stderr


@pytest.mark.integration
def test_publish_reads_standard_input(kafka_settings: KafkaSettings) -> None:
    lines = [{"text": "Piped in", "review_id": "p1"}, {"text": ""}, {"text": "Also piped", "review_id": "p2"}]
    text = "\n".join(json.dumps(line) for line in lines) + "\n"

    result = CliRunner().invoke(app, ["publish", "-", "--format", "jsonl", "--source", "pipe"], input=text)

    assert result.exit_code == 0, result.output
    assert "sent 2, rejected 1, failed 0" in result.stdout
    assert "rejected line 2:" in result.stderr
    keys = sorted(key for key, _, _ in consume_all(kafka_settings, kafka_settings.topic, expected=2))
    assert keys == [b"pipe:p1", b"pipe:p2"]


@pytest.mark.integration
def test_strict_publish_of_standard_input_checks_it_all_before_sending(kafka_settings: KafkaSettings) -> None:
    """Standard input can be read once; --strict needs two passes, so it is kept on disk between them."""
    good = "".join(json.dumps({"text": f"Review {n}", "review_id": f"s{n}"}) + "\n" for n in range(3))
    refused = CliRunner().invoke(app, ["publish", "-", "--format", "jsonl", "--strict"], input=good + "{bad\n")
    assert refused.exit_code == 1
    assert "sent 0, rejected 1 (--strict: nothing sent)" in refused.stdout

    sent = CliRunner().invoke(app, ["publish", "-", "--format", "jsonl", "--strict"], input=good)
    assert sent.exit_code == 0, sent.output
    assert "sent 3, rejected 0, failed 0" in sent.stdout
    keys = sorted(key for key, _, _ in consume_all(kafka_settings, kafka_settings.topic, expected=3, settle=1.0))
    assert keys == [b"cli:s0", b"cli:s1", b"cli:s2"]


@pytest.mark.integration
def test_publish_sends_each_row_as_it_reads_it_not_after_reading_the_file(
    tmp_path: Path, kafka_settings: KafkaSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole file was validated into memory before the first send: 351 MB of RSS for
    200k rows, about 1.7 GB per million. Now the sender gets row 1 when row 1 is read."""
    path = tmp_path / "reviews.jsonl"
    path.write_text("".join(json.dumps({"text": f"Review {n}"}) + "\n" for n in range(2_000)), encoding="utf-8")
    validated = 0
    validated_when_sent: list[int] = []
    real_to_message, real_publish = publish.to_message, publish.publish_messages

    def counting_to_message(*args: Any, **kwargs: Any) -> ReviewMessage:
        nonlocal validated
        validated += 1
        return real_to_message(*args, **kwargs)

    def watching_publish(messages: Iterable[tuple[int, ReviewMessage]], *args: Any, **kwargs: Any) -> Any:
        def watched() -> Iterator[tuple[int, ReviewMessage]]:
            for item in messages:
                validated_when_sent.append(validated)
                yield item

        return real_publish(watched(), *args, **kwargs)

    monkeypatch.setattr(publish, "to_message", counting_to_message)
    monkeypatch.setattr(publish, "publish_messages", watching_publish)

    result = CliRunner().invoke(app, ["publish", str(path)])

    assert result.exit_code == 0, result.output
    assert "sent 2000, rejected 0, failed 0" in result.stdout
    assert validated_when_sent == list(range(1, 2_001))


@pytest.mark.integration
def test_limit_stops_reading_at_the_limit(tmp_path: Path, kafka_settings: KafkaSettings) -> None:
    path = tmp_path / "reviews.jsonl"
    lines = [json.dumps({"text": f"Review {n}", "review_id": f"l{n}"}) for n in range(3)] + ["{bad"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    result = CliRunner().invoke(app, ["publish", str(path), "--limit", "2"])

    assert result.exit_code == 0, result.output
    assert "sent 2, rejected 0, failed 0" in result.stdout
    keys = sorted(key for key, _, _ in consume_all(kafka_settings, kafka_settings.topic, expected=2, settle=1.0))
    assert keys == [b"cli:l0", b"cli:l1"]


def test_a_header_that_is_not_utf8_is_the_files_error_not_silently_lost_columns(tmp_path: Path) -> None:
    """A Latin-1 "marqué" column matched no --brand-column, so every brand was dropped without a word."""
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"avis,marqu\xe9,review_id\nGreat product,Acme,h1\n")
    result = CliRunner().invoke(app, ["publish", str(path), "--text-column", "avis", "--brand-column", "marqué"])
    assert result.exit_code == 2
    assert "the header is not UTF-8" in result.stderr


def test_standard_input_closed_is_a_clear_error() -> None:
    from core.publish import spooled_rows

    with pytest.raises(ValueError, match="standard input is closed"), spooled_rows(Path("-"), "csv", None):
        pass


def test_a_tsv_file_is_read_as_a_stream_not_held_whole() -> None:
    """``tsv_records`` listed every line first: 300 MB of RSS for a 206 MB file under --strict."""
    from core.delimited import tsv_records

    pulled = 0

    def lines() -> Iterator[str]:
        nonlocal pulled
        yield "text\tbrand\n"
        for n in range(10_000):
            pulled += 1
            yield f"Review {n}\tAcme\n"

    rows = tsv_records(lines())
    next(rows)
    assert pulled == 1
    assert sum(1 for _ in rows) == 9_999


def _write_to_fifo(path: Path, text: str) -> threading.Thread:
    def write() -> None:
        with path.open("w", encoding="utf-8") as fifo:
            fifo.write(text)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


@pytest.mark.integration
@pytest.mark.parametrize("strict", [False, True])
def test_a_pipe_is_published_like_a_file(tmp_path: Path, kafka_settings: KafkaSettings, strict: bool) -> None:
    """``publish <(zcat reviews.csv.gz)``: a FIFO reads once, so --strict keeps a copy for its second pass."""
    fifo = tmp_path / "reviews.csv"
    os.mkfifo(fifo)
    writer = _write_to_fifo(fifo, f"text,review_id\nFrom a pipe,{strict}-1\nAlso piped,{strict}-2\n")

    result = CliRunner().invoke(app, ["publish", str(fifo), *(["--strict"] if strict else [])])

    writer.join(timeout=10)
    assert result.exit_code == 0, result.output
    assert "sent 2, rejected 0, failed 0" in result.stdout
    keys = sorted(key for key, _, _ in consume_all(kafka_settings, kafka_settings.topic, expected=2, settle=1.0))
    assert keys == [f"cli:{strict}-1".encode(), f"cli:{strict}-2".encode()]


@pytest.mark.integration
def test_a_read_error_part_way_sends_what_was_read_and_says_so(
    tmp_path: Path, kafka_settings: KafkaSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It was a traceback, and the messages already queued were dropped with the producer."""

    def failing(path: Path, fmt: str | None = None) -> Iterator[tuple[int, dict[str, Any] | str]]:
        yield 2, {"text": "Read before the error", "review_id": "e1"}
        yield 3, {"text": "Also read", "review_id": "e2"}
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(publish, "read_rows", failing)
    path = tmp_path / "reviews.csv"
    path.write_text("text\n", encoding="utf-8")

    result = CliRunner().invoke(app, ["publish", str(path)])

    assert result.exit_code == 2
    assert "sent 2, rejected 0, failed 0" in result.stdout
    assert "reading stopped part-way, the rest was not sent: [Errno 5] Input/output error" in result.stderr
    keys = sorted(key for key, _, _ in consume_all(kafka_settings, kafka_settings.topic, expected=2))
    assert keys == [b"cli:e1", b"cli:e2"]
