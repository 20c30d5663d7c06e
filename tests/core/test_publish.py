"""`reviewscore publish`: a file of reviews ends up on the topic, exactly its valid rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

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


def test_publish_without_a_broker_says_what_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "reviews.jsonl"
    path.write_text(json.dumps({"text": "ok", "source": "user"}) + "\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["publish", str(path)])
    assert result.exit_code != 0
    assert "KAFKA_BOOTSTRAP_SERVERS" in str(result.exception)


def test_to_kafka_value_is_the_contract_json() -> None:
    key, value = ReviewMessage(text="Hi", source="user").to_kafka()
    assert json.loads(value) == {"schema_version": 1, "text": "Hi", "source": "user"}
    assert key.startswith(b"user:sha256:")
