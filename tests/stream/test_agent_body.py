"""The worker's control flow between threads and batches, without a broker: the Faust agent's loop
body acknowledges a batch only once stored and retries a failure the pipeline did not foresee on
the same batch, never skipping it; the pipeline's two threads take turns at the model.

The worker tests (test_worker.py) run the same code against Tansu and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, cast

from core.messages import ReviewMessage
from model.base import Score
from stream.app import handle_batch
from stream.metrics import Health
from stream.pipeline import BatchOutcome, BatchProcessor
from stream.records import Record
from tests.fixtures.stream import LexiconScorer


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


@dataclass
class _CountsCallers(LexiconScorer):
    """Records how many threads were inside the model at once (a fast tokenizer used from two
    raises "Already borrowed", and the review it was scoring could be dead-lettered)."""

    inside: int = 0
    most_inside: int = 0
    guard: threading.Lock = field(default_factory=threading.Lock)

    def predict(self, texts: Sequence[str]) -> list[Score]:
        with self.guard:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        try:
            return super().predict(texts)
        finally:
            with self.guard:
                self.inside -= 1


def test_two_threads_scoring_at_once_take_turns_at_the_model() -> None:
    """With STREAM_OVERLAP_WRITES the writer thread scores an older version of a refused row while
    the next batch is scored on the other thread."""
    scorer = _CountsCallers(delay=0.05)
    processor = BatchProcessor(
        scorer, cast(Any, None), cast(Any, None), "reviews.dlq", 20_000, 16_384, 64, retry_initial=0.01, retry_max=0.02
    )
    batches = [
        [
            Record("reviews", 0, n, None, ReviewMessage(text=f"Good {n}", source="t").to_kafka()[1])
            for n in range(k, k + 4)
        ]
        for k in (0, 100)
    ]

    with ThreadPoolExecutor(2) as pool:
        prepared = list(pool.map(processor.prepare, batches))

    assert [len(p.rows) for p in prepared] == [4, 4]
    assert scorer.most_inside == 1
