"""`reviewscore trends`: the brands moving most, from a cron job, with an alert that exits 3 and posts a webhook."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import pytest
from typer.testing import CliRunner

from core.cli import _load_plugins, app
from query_api.trends_cli import ALERT_EXIT
from tests.fixtures.api import free_port, insert_rows, label_for, make_row

pytestmark = pytest.mark.integration

_load_plugins()
runner = CliRunner()
END = "2026-03-10T00:00:00Z"


def _rows() -> list[dict[str, Any]]:
    """Acme falls from 0.8 to 0.3 (six reviews a day), Globex rises from 0.4 to 0.6, Initech holds at 0.5."""
    rng = random.Random(3)
    day = datetime(2026, 3, 9, 10, tzinfo=UTC)
    plan = {"Acme": (0.8, 0.3), "Globex": (0.4, 0.6), "Initech": (0.5, 0.5)}
    rows = []
    for brand, (before, after) in plan.items():
        for moment, score in ((day - timedelta(days=1), before), (day, after)):
            for n in range(6):
                row = make_row(len(rows), rng, brand=brand, sentiment_score=score, label=label_for(score))
                row["created_on"] = moment + timedelta(minutes=n)
                rows.append(row)
    return rows


@pytest.fixture
def moving(database_url: str, readonly_database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    insert_rows(database_url, _rows())
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DATABASE_READONLY_URL", readonly_database_url)


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []
    keys: ClassVar[list[str | None]] = []
    status = 200

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(json.loads(body))
        _Hook.keys.append(self.headers.get("Idempotency-Key"))
        self.send_response(_Hook.status)
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    _Hook.received, _Hook.keys, _Hook.status = [], [], 200
    server = HTTPServer(("127.0.0.1", free_port()), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()


def test_trends_lists_the_largest_fall_first_with_both_windows(moving: None) -> None:
    result = runner.invoke(app, ["trends", "--days", "1", "--end", END])

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "1 day from 2026-03-09 00:00 UTC against the 1 day before; at least 5 reviews in each"
    assert [line.split()[0] for line in lines[2:]] == ["Acme", "Initech", "Globex"]
    assert lines[2].split() == ["Acme", "6", "(6)", "0.30", "(0.80)", "-0.50", "100%", "(+100", "pt)"]


def test_trends_as_json_is_the_api_answer(moving: None) -> None:
    result = runner.invoke(app, ["trends", "--days", "1", "--end", END, "--json", "--order", "rising"])

    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert [b["brand"] for b in body["brands"]] == ["Globex", "Initech", "Acme"]
    assert body["brands"][0]["change"] == pytest.approx(0.2)
    assert (body["current"]["since"], body["current"]["until"]) == ("2026-03-09T00:00:00Z", "2026-03-10T00:00:00Z")


def test_a_fall_past_the_alert_exits_3_and_posts_it_to_the_webhook(moving: None, webhook: str) -> None:
    # Listed rising and one brand only: the alert still finds the fall.
    args = ["trends", "--days", "1", "--end", END, "--order", "rising", "--limit", "1"]
    result = runner.invoke(app, [*args, "--alert-drop", "0.2", "--webhook", webhook])

    assert result.exit_code == ALERT_EXIT, result.output
    assert "1 brand fell by 0.20 or more" in result.stderr
    [posted] = _Hook.received
    assert posted["text"].startswith("1 brand fell by 0.20 or more in mean sentiment over 1 day from 2026-03-09:")
    assert "- Acme: -0.50 (0.80 -> 0.30), 6 reviews (before: 6)" in posted["text"]
    assert [alert["brand"] for alert in posted["alerts"]] == ["Acme"]


def test_a_repeated_alert_carries_the_same_key_so_a_receiver_can_drop_it(
    moving: None, webhook: str, database_url: str
) -> None:
    """A retry after a webhook that answered too late, or a cron run again within the same windows,
    is the same alert, even when a late review moved the mean; another threshold or window is not."""
    alert = ["trends", "--days", "1", "--end", END, "--alert-drop", "0.2", "--webhook", webhook]
    first = runner.invoke(app, alert)
    late = make_row(999, random.Random(9), brand="Acme", sentiment_score=0.1, label="negative")
    late["created_on"] = datetime(2026, 3, 9, 23, tzinfo=UTC)
    insert_rows(database_url, [late])
    again = runner.invoke(app, alert)
    lower = runner.invoke(app, [*alert[:-4], "--alert-drop", "0.1", "--webhook", webhook])
    other_window = runner.invoke(app, [*alert[:4], "2026-03-10T01:00:00Z", *alert[5:]])

    assert [r.exit_code for r in (first, again, lower, other_window)] == [ALERT_EXIT] * 4
    ids = [posted["alert_id"] for posted in _Hook.received]
    assert _Hook.keys == ids  # the header and the body agree
    assert ids[0] == ids[1]
    assert _Hook.received[0]["alerts"][0]["change"] != _Hook.received[1]["alerts"][0]["change"]
    assert len({ids[0], ids[2], ids[3]}) == 3


def test_an_alert_names_every_brand_that_fell_however_many(
    database_url: str, readonly_database_url: str, webhook: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More fallen brands than any listing's limit: the alert still has each of them (it read
    only the first thousand before), and the listing keeps its own limit."""
    monkeypatch.setenv("DATABASE_READONLY_URL", readonly_database_url)
    rng, rows = random.Random(5), []
    day = datetime(2026, 3, 9, 10, tzinfo=UTC)
    for n in range(1_050):
        for moment, score in ((day - timedelta(days=1), 0.9), (day, 0.2 if n % 50 else 0.85)):
            row = make_row(len(rows), rng, brand=f"Brand {n:04d}", sentiment_score=score, label=label_for(score))
            row["created_on"] = moment
            rows.append(row)
    insert_rows(database_url, rows)

    args = ["trends", "--days", "1", "--end", END, "--min-count", "1", "--limit", "3", "--alert-drop", "0.5"]
    result = runner.invoke(app, [*args, "--webhook", webhook])

    assert result.exit_code == ALERT_EXIT, result.output
    assert len(result.stdout.splitlines()) == 2 + 3  # the heading, the column names, three brands
    [posted] = _Hook.received
    assert len(posted["alerts"]) == 1_050 - 21  # every 50th brand held (0.9 -> 0.85)
    assert "Brand 1049" in {alert["brand"] for alert in posted["alerts"]}


def test_an_alert_takes_falls_of_at_least_the_drop_largest_first_ties_by_name(
    database_url: str, readonly_database_url: str, webhook: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """0.55 - 0.60 is -0.04999999999999993 in floats: a fall shown as -0.05 meets a drop of 0.05."""
    monkeypatch.setenv("DATABASE_READONLY_URL", readonly_database_url)
    rng, rows = random.Random(4), []
    day = datetime(2026, 3, 9, 10, tzinfo=UTC)
    plan = {"Rise": (0.4, 0.6), "Beta": (0.8, 0.5), "Alpha": (0.8, 0.5), "Dip": (0.6, 0.55)}
    for brand, (before, after) in plan.items():
        for moment, score in ((day - timedelta(days=1), before), (day, after)):
            row = make_row(len(rows), rng, brand=brand, sentiment_score=score, label=label_for(score))
            row["created_on"] = moment
            rows.append(row)
    insert_rows(database_url, rows)

    def alerted(drop: str) -> list[str]:
        _Hook.received.clear()
        args = ["trends", "--days", "1", "--end", END, "--min-count", "1", "--alert-drop", drop, "--webhook", webhook]
        result = runner.invoke(app, args)
        assert result.exit_code in (0, ALERT_EXIT), result.output
        return [alert["brand"] for posted in _Hook.received for alert in posted["alerts"]]

    assert alerted("0.25") == ["Alpha", "Beta"]
    assert alerted("0.05") == ["Alpha", "Beta", "Dip"]
    assert alerted("0.5") == []


def test_the_reader_url_alone_is_enough_as_in_the_cronjob(moving: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL")
    result = runner.invoke(app, ["trends", "--days", "1", "--end", END, "--alert-drop", "0.2"])
    assert result.exit_code == ALERT_EXIT, result.output


def test_an_end_with_an_offset_is_shown_in_utc(moving: None) -> None:
    result = runner.invoke(app, ["trends", "--days", "1", "--end", "2026-03-10T02:00:00+02:00"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("1 day from 2026-03-09 00:00 UTC")


def test_whole_days_end_at_the_last_utc_midnight(moving: None) -> None:
    result = runner.invoke(app, ["trends", "--days", "2", "--whole-days"])
    both = runner.invoke(app, ["trends", "--whole-days", "--end", END])

    assert result.exit_code == 0, result.output
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    starts = {f"{day:%Y-%m-%d} 00:00 UTC" for day in (today - timedelta(days=2), today - timedelta(days=1))}
    assert any(result.stdout.startswith(f"2 days from {start}") for start in starts)  # a run across midnight
    assert both.exit_code == 2
    assert "not both" in both.output


@pytest.mark.parametrize(
    ("status", "url"),
    [
        (302, None),
        (200, "https://hooks.example:SECRET-TOKEN@x/"),
    ],
    ids=["redirected", "bad-port"],
)
def test_a_webhook_that_is_not_taken_is_exit_2_without_the_secret_url(
    moving: None, webhook: str, status: int, url: str | None
) -> None:
    _Hook.status = status
    target = url or webhook + "?token=SECRET-TOKEN"
    result = runner.invoke(app, ["trends", "--days", "1", "--end", END, "--alert-drop", "0.2", "--webhook", target])

    assert result.exit_code == 2, result.output
    assert "the webhook did not take the alert" in result.stderr
    assert "SECRET-TOKEN" not in result.output


@pytest.mark.parametrize(
    "url",
    ["hooks.example/T000/SECRET-TOKEN", "https://[hooks.example/T000/SECRET-TOKEN"],  # the second was a traceback
    ids=["no-scheme", "unclosed-bracket"],
)
@pytest.mark.parametrize("drop", ["0.2", "0.6"], ids=["a-brand-fell", "none-fell"])
def test_a_webhook_url_that_could_never_be_posted_to_fails_every_run(
    moving: None, webhook: str, url: str, drop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It exited 0 on the days no brand fell, and failed only on the day an alert had to go out."""
    by_option = runner.invoke(app, ["trends", "--days", "1", "--end", END, "--alert-drop", drop, "--webhook", url])
    monkeypatch.setenv("API_ALERT_WEBHOOK", url)
    by_setting = runner.invoke(app, ["trends", "--days", "1", "--end", END, "--alert-drop", drop])

    for result in (by_option, by_setting):
        assert result.exit_code == 2, result.output
        assert "error: --webhook / API_ALERT_WEBHOOK: the webhook URL must be an absolute http(s) URL" in result.stderr
        assert "SECRET-TOKEN" not in result.output
    assert _Hook.received == []


def test_the_webhook_can_come_from_the_settings(moving: None, webhook: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_ALERT_WEBHOOK", webhook)  # a Secret in the k8s CronJob
    result = runner.invoke(app, ["trends", "--days", "1", "--end", END, "--alert-drop", "0.2"])

    assert result.exit_code == ALERT_EXIT, result.output
    assert [alert["brand"] for alert in _Hook.received[0]["alerts"]] == ["Acme"]
    assert webhook not in result.output  # the URL is a secret


def test_no_fall_past_the_alert_exits_0_and_posts_nothing(moving: None, webhook: str) -> None:
    result = runner.invoke(app, ["trends", "--days", "1", "--end", END, "--alert-drop", "0.6", "--webhook", webhook])

    assert result.exit_code == 0, result.output
    assert "no brand fell by 0.60 or more" in result.stderr
    assert _Hook.received == []


def test_a_webhook_that_refuses_the_alert_is_an_error_not_a_silent_pass(moving: None, webhook: str) -> None:
    _Hook.status = 500
    result = runner.invoke(app, ["trends", "--days", "1", "--end", END, "--alert-drop", "0.2", "--webhook", webhook])

    assert result.exit_code == 2, result.output
    assert "the webhook did not take the alert" in result.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--time-field", "updated_on"], "created_on or published_at"),
        (["--order", "sideways"], "falling or rising"),
        (["--webhook", "http://127.0.0.1:9/x"], "add --alert-drop"),
        (["--end", "yesterday"], "not an ISO-8601 date-time"),
        (["--end", "20261124"], "not an ISO-8601 date-time"),  # a bare number, refused as the API does
        (["--end", "0001-01-03", "--days", "7"], "before year 1"),
    ],
)
def test_bad_options_are_usage_errors(args: list[str], says: str) -> None:
    result = runner.invoke(app, ["trends", *args])
    assert result.exit_code == 2
    assert says in result.output


def test_without_a_database_the_error_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"postgresql://nobody@127.0.0.1:{free_port()}/nothing")
    monkeypatch.delenv("DATABASE_READONLY_URL", raising=False)
    result = runner.invoke(app, ["trends"])
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: could not read the trends: ")
