"""``rescore`` gets past rows the new model or the table refuses, against a real database."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from core.messages import ReviewMessage
from stream.pipeline import ScorerUnavailableError
from stream.records import Record, to_row, triage
from stream.rescore import pending_rows, rescore_rows
from stream.sink import PostgresSink
from tests.fixtures.stream import EXPLODE, OUT_OF_RANGE, UNTOKENIZABLE, LexiconScorer, cli_app, fetch_rows, make_reviews

pytestmark = pytest.mark.integration

REFUSED = {
    "model": f"{EXPLODE}: the new model raises on this text",
    "tokenizer": f"{UNTOKENIZABLE}: the new tokenizer raises on this text",
    "table": f"{OUT_OF_RANGE}: the new model scores it out of the table's range",
}


def _store(engine: Engine, reviews: list[ReviewMessage]) -> dict[str, int]:
    """The reviews as rows at version lexicon-1; their ids by text."""
    records = [Record("reviews", 0, i, *r.to_kafka(), None) for i, r in enumerate(reviews)]
    parsed, _ = triage(records, 20_000)
    PostgresSink(engine).write([to_row(p, LexiconScorer().score_one(p.message.text)) for p in parsed])
    with engine.connect() as conn:
        return {sentence: row_id for row_id, sentence in conn.execute(text("SELECT id, sentence FROM sentiments"))}


def _with_refused(n: int) -> list[ReviewMessage]:
    good = make_reviews(n)
    refused = [ReviewMessage(text=t, source="test", review_id=f"bad-{k}") for k, t in REFUSED.items()]
    return [*good[:3], refused[0], *good[3:9], refused[1], *good[9:], refused[2]]


def test_rescore_skips_the_rows_the_new_model_or_the_table_refuses_and_rescores_all_the_others(
    engine: Engine, database_url: str
) -> None:
    ids = _store(engine, _with_refused(20))
    new = LexiconScorer(model_version="lexicon-2")

    first = rescore_rows(engine, new, batch_size=8)
    again = rescore_rows(engine, new, batch_size=8)

    refused_ids = {ids[t] for t in REFUSED.values()}
    assert first.rescored == 20
    assert set(first.skipped) == refused_ids
    assert "ValueError: the lexicon model cannot score this text" in first.skipped[ids[REFUSED["model"]]]
    assert "CheckViolation" in first.skipped[ids[REFUSED["table"]]]
    assert (again.rescored, set(again.skipped)) == (0, refused_ids)  # each run tries them again, and gets past
    rows = fetch_rows(database_url)
    assert {r["id"] for r in rows if r["model_version"] == "lexicon-2"} == set(ids.values()) - refused_ids
    assert {r["id"] for r in rows if r["model_version"] == "lexicon-1"} == refused_ids
    assert pending_rows(engine, "lexicon-2") == 3


def test_rescore_stops_instead_of_skipping_everything_when_the_model_is_down(engine: Engine, tmp_path: Path) -> None:
    _store(engine, make_reviews(10))
    down = tmp_path / "device-lost"
    down.touch()

    with pytest.raises(ScorerUnavailableError):
        rescore_rows(engine, LexiconScorer(model_version="lexicon-2", down=down), batch_size=4)

    assert pending_rows(engine, "lexicon-2") == 10


def test_rescore_command_counts_and_names_the_rows_it_skipped(
    engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _store(engine, _with_refused(9))
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("STREAM_SCORER", "tests.fixtures.stream:make_test_scorer")
    monkeypatch.setenv("RS_TEST_SCORER_VERSION", "lexicon-3")

    result = CliRunner().invoke(cli_app(), ["rescore", "--batch-size", "5"])
    strict = CliRunner().invoke(cli_app(), ["rescore", "--batch-size", "5", "--fail-on-skip"])

    assert result.exit_code == 0, result.output
    assert "re-scored 9 rows to model version lexicon-3" in result.output
    skipped = ", ".join(str(i) for i in sorted(ids[t] for t in REFUSED.values()))
    assert f"skipped 3 rows the new model or the table refused (ids {skipped})" in result.output
    assert strict.exit_code == 1, strict.output  # a script that asks is told rows were left behind
    assert f"skipped 3 rows the new model or the table refused (ids {skipped})" in strict.output


def test_a_limited_rescore_counts_only_rescored_rows_so_it_gets_past_rows_it_keeps_failing_on(
    engine: Engine, database_url: str
) -> None:
    refused = [ReviewMessage(text=t, source="test", review_id=f"bad-{k}") for k, t in REFUSED.items()]
    ids = _store(engine, [*refused, *make_reviews(6)])  # the refused rows come first, in id order
    new = LexiconScorer(model_version="lexicon-2")

    runs = [rescore_rows(engine, new, batch_size=2, limit=4) for _ in range(2)]

    assert [r.rescored for r in runs] == [4, 2]
    assert set(runs[0].skipped) == {ids[t] for t in REFUSED.values()}
    assert pending_rows(engine, "lexicon-2") == 3  # only the refused rows are left


def test_rescore_held_up_past_the_statement_timeout_says_how_far_it_got_and_to_run_it_again(
    engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lock held longer than the statement timeout (a rollup rebuild, a migration) was a QueryCanceled traceback."""
    _store(engine, make_reviews(12))
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DATABASE_STATEMENT_TIMEOUT_MS", "300")
    monkeypatch.setenv("STREAM_SCORER", "tests.fixtures.stream:make_test_scorer")
    monkeypatch.setenv("RS_TEST_SCORER_VERSION", "lexicon-3")

    with engine.connect() as locker:
        locker.execute(text("LOCK TABLE sentiments IN SHARE ROW EXCLUSIVE MODE"))  # held until the block ends
        result = CliRunner().invoke(cli_app(), ["rescore", "--batch-size", "5"])

    assert result.exit_code == 2, (result.output, result.exception)
    assert "error: the database stopped the job (canceling statement due to statement timeout)" in result.output
    assert "0 rows re-scored so far keep their new scores: run it again to resume" in result.output
    again = CliRunner().invoke(cli_app(), ["rescore", "--batch-size", "5"])
    assert "re-scored 12 rows to model version lexicon-3" in again.output
