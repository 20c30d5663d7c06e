"""The worker's health: every part reports its own problem, and only its own recovery clears it."""

from __future__ import annotations

import json

from stream.metrics import Health, Metrics, WsgiApp, wsgi_app


def _healthy_gauge(metrics: Metrics) -> float:
    return float(metrics.registry.get_sample_value("reviewscore_healthy") or 0.0)


def test_a_new_worker_is_healthy() -> None:
    metrics = Metrics()
    health = Health(metrics)

    assert health.report() == {"status": "ok"}
    assert _healthy_gauge(metrics) == 1.0


def test_one_part_recovering_does_not_hide_another_parts_problem() -> None:
    metrics = Metrics()
    health = Health(metrics)
    health.failing("write", "write failing: OperationalError: connection refused")
    health.failing("consumer", "consumer: JoinGroup failed")

    assert health.ok("consumer") is True
    report = health.report()
    assert report["status"] == "unhealthy"
    assert report["problem"].startswith("write failing")
    assert _healthy_gauge(metrics) == 0.0

    assert health.ok("write") is True
    assert health.report() == {"status": "ok"}
    assert _healthy_gauge(metrics) == 1.0


def test_a_part_without_a_problem_has_nothing_to_recover_from() -> None:
    health = Health()
    health.failing("write", "write failing")

    assert health.ok("score") is False
    assert not health.is_healthy


def test_the_report_names_the_oldest_problem() -> None:
    health = Health()
    health.failing("write", "write failing: first")
    health.failing("dead_letter", "dead_letter failing")
    health.failing("write", "write failing: still")

    assert health.report()["problem"] == "write failing: still"


def _get(app: WsgiApp, path: str) -> tuple[str, bytes]:
    replies: list[str] = []
    body = b"".join(app({"PATH_INFO": path, "REQUEST_METHOD": "GET"}, lambda status, _headers: replies.append(status)))
    return replies[0], body


def test_liveness_stays_up_while_health_reports_a_dependency_outage() -> None:
    # An orchestrator restarts on /livez and routes on /healthz: a worker retrying through a
    # database outage must be reported, not killed.
    metrics = Metrics()
    health = Health(metrics)
    app = wsgi_app(metrics, health)
    health.failing("write", "write failing: OperationalError")

    status, body = _get(app, "/healthz")
    assert status.startswith("503")
    assert json.loads(body)["problem"] == "write failing: OperationalError"
    assert _get(app, "/livez")[0].startswith("200")
