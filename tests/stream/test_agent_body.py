"""The Faust agent's loop body: a batch is acknowledged only once stored, and a failure the pipeline
did not foresee is retried on the same batch, never skipped.

No broker: this is the body's own control flow, with the events Faust hands it. The worker tests
(test_worker.py) run the same body against Tansu and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import cast

from stream.app import handle_batch
from stream.metrics import Health
from stream.pipeline import BatchOutcome, BatchProcessor
from stream.records import Record


@dataclass
class _Message:
    offset: int
    topic: str = "reviews"
    partition: int = 0
    key: bytes | None = None
    value: bytes = b'{"text": "Fine", "source": "user"}'
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    timestamp: float = 1_700_000_000.0
    references: int = 1

    def incref(self) -> None:
        self.references += 1


@dataclass
class _Event:
    message: _Message


@dataclass
class _Stream:
    acked: list[int] = field(default_factory=list)

    async def ack(self, event: _Event) -> None:
        event.message.references -= 1
        self.acked.append(event.message.offset)


@dataclass
class _FailsOnce:
    """A processor with a bug that shows once: what process() never raises by design."""

    health: Health = field(default_factory=Health)
    retry_initial: float = 0.01
    retry_max: float = 0.05
    seen: list[list[int]] = field(default_factory=list)
    unhealthy_while_failing: list[bool] = field(default_factory=list)
    abandon: threading.Event = field(default_factory=threading.Event)

    def process(self, records: list[Record]) -> BatchOutcome:
        self.seen.append([record.offset for record in records])
        self.unhealthy_while_failing.append(not self.health.is_healthy)
        if len(self.seen) == 1:
            raise KeyError("a bug in the pipeline")
        return BatchOutcome(consumed=len(records), scored=len(records))


def test_an_unexpected_failure_retries_the_same_batch_and_acknowledges_it_only_once_stored() -> None:
    """It left the batch unacknowledged and went on: a later batch's ack could commit past it."""
    events = [_Event(_Message(offset)) for offset in range(3)]
    stream, processor = _Stream(), _FailsOnce()

    with ThreadPoolExecutor(1) as executor:
        outcome = asyncio.run(handle_batch(stream, events, cast(BatchProcessor, processor), executor, grace=1.0))

    assert outcome is not None
    assert outcome.scored == 3
    assert processor.seen == [[0, 1, 2], [0, 1, 2]]  # the same batch, not the next one
    assert processor.unhealthy_while_failing == [False, True]  # unhealthy while it retried
    assert processor.health.is_healthy
    assert stream.acked == [0, 1, 2]
    assert [event.message.references for event in events] == [1, 1, 1]  # take_events' own, released later


@dataclass
class _AlwaysFails(_FailsOnce):
    """The bug shows every time; shutdown gives up on the batch after a few attempts."""

    def process(self, records: list[Record]) -> BatchOutcome:
        self.seen.append([record.offset for record in records])
        if len(self.seen) == 3:
            self.abandon.set()
        raise KeyError("a bug in the pipeline")


def test_a_batch_that_keeps_failing_is_never_acknowledged_and_shutdown_ends_the_retries() -> None:
    events = [_Event(_Message(offset)) for offset in range(2)]
    stream, processor = _Stream(), _AlwaysFails()

    with ThreadPoolExecutor(1) as executor:
        outcome = asyncio.run(handle_batch(stream, events, cast(BatchProcessor, processor), executor, grace=1.0))

    assert outcome is None
    assert processor.seen == [[0, 1]] * 3
    assert stream.acked == []  # redelivered after the restart
    assert not processor.health.is_healthy
