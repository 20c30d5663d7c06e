"""A client that retries every 50 ms must not log every 50 ms: one line per kind per window, then a count."""

from __future__ import annotations

import logging
import socket
import time

import pytest

from core.logs import RepeatedMessages, client_logger, hold_back_repeats


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _record(message: str, *args: object, level: int = logging.ERROR, name: str = "rdkafka") -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, args, None)


REFUSED = "FAIL [rdkafka#consumer-1] 127.0.0.1:9092/bootstrap: Connection refused (after %dms in state CONNECT)"


def test_the_same_failure_is_let_through_once_per_window_and_then_counted() -> None:
    clock = Clock()
    repeats = RepeatedMessages(window=30, clock=clock)
    passed = []
    for step in range(600):  # a minute of reconnects every 100 ms, each "after Nms" different
        clock.now = step / 10
        record = _record(
            REFUSED.replace(")", f", {step} identical error(s) suppressed)") if step % 2 else REFUSED, step % 7
        )
        if repeats.filter(record):
            passed.append((clock.now, record.getMessage()))

    assert [moment for moment, _ in passed] == [0.0, 30.0]
    assert passed[1][1].endswith("(299 more like it in the last 30 s)")
    assert "(after 6ms in state CONNECT) (299" in passed[1][1]  # the line as it came, not its kind
    assert "(after 0ms in state CONNECT)" in passed[0][1]


def test_a_different_error_a_different_broker_or_another_level_gets_through_at_once() -> None:
    repeats = RepeatedMessages(window=30, clock=Clock())
    first = _record(REFUSED, 0)
    others = [
        _record(REFUSED.replace("9092", "9093"), 0),
        _record("FAIL [rdkafka#consumer-1] 127.0.0.1:9092/bootstrap: SSL handshake failed"),
        _record(REFUSED, 0, level=logging.WARNING),
        _record(REFUSED, 0, name="another.client"),
    ]

    assert repeats.filter(first)
    assert all(repeats.filter(record) for record in others)
    assert not repeats.filter(_record(REFUSED, 12))


def test_a_kind_seen_once_carries_no_count() -> None:
    clock = Clock()
    repeats = RepeatedMessages(window=5, clock=clock)
    record = _record("GROUPCOORD coordinator changed")
    assert repeats.filter(record)
    clock.now = 60
    again = _record("GROUPCOORD coordinator changed")
    assert repeats.filter(again)
    assert again.getMessage() == "GROUPCOORD coordinator changed"


def test_the_memory_of_kinds_is_bounded_by_forgetting_the_oldest() -> None:
    """Only the ``kinds`` most recent kinds are remembered: an older one gets through again, early."""
    repeats = RepeatedMessages(window=30, clock=Clock(), kinds=8)
    for index in range(100):
        assert repeats.filter(_record(f"error {index}"))

    assert not repeats.filter(_record("error 99"))  # remembered: held back
    assert not repeats.filter(_record("error 92"))
    assert repeats.filter(_record("error 0"))  # forgotten: let through again
    assert repeats.filter(_record("error 91"))


def test_client_logger_installs_its_filter_once() -> None:
    logger = client_logger("tests.core.logs.client")
    assert client_logger("tests.core.logs.client") is logger
    assert sum(isinstance(f, RepeatedMessages) for f in logger.filters) == 1


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_real_consumer_with_no_broker_logs_a_refused_connection_once(caplog: pytest.LogCaptureFixture) -> None:
    """librdkafka itself: about 20 refused reconnects a second, which reached the log one by one."""
    from confluent_kafka import Consumer

    logger = client_logger("tests.core.logs.librdkafka")
    consumer = Consumer(
        {"bootstrap.servers": f"127.0.0.1:{_closed_port()}", "group.id": "g", "log_level": 3}, logger=logger
    )
    try:
        consumer.subscribe(["reviews"])
        with caplog.at_level(logging.INFO, logger=logger.name):
            deadline = time.monotonic() + 2.5
            while time.monotonic() < deadline:
                consumer.consume(10, timeout=0.2)
    finally:
        consumer.close()

    refused = [r for r in caplog.records if r.name == logger.name and "Connection refused" in r.getMessage()]
    assert len(refused) == 1


def test_hold_back_repeats_covers_a_client_and_every_logger_below_it_that_exists() -> None:
    """aiokafka logs from several modules' loggers; a logger's filter does not see its children's records."""
    for name in ("tests.fakeclient.conn", "tests.fakeclient.consumer.fetcher", "tests.fakeclientele"):
        logging.getLogger(name)

    names = hold_back_repeats("tests.fakeclient")

    assert names == ["tests.fakeclient", "tests.fakeclient.conn", "tests.fakeclient.consumer.fetcher"]
    for name in names:
        assert any(isinstance(f, RepeatedMessages) for f in logging.getLogger(name).filters)
    assert not logging.getLogger("tests.fakeclientele").filters
