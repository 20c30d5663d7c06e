"""One micro-batch, start to durable finish: validate, score, upsert, dead-letter.

``BatchProcessor.process`` is synchronous and runs on the worker's executor thread, so the
event loop keeps heartbeating and fetching while the model and the database work. It returns
only when every record of the batch is either a committed row or a confirmed dead letter;
transient failures (database down, broker hiccup, anything unexpected) are retried with
exponential backoff and jitter while the worker reports itself unhealthy. It raises only
``AbandonedError``, when shutdown ran out of patience: the caller must then not acknowledge.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, wait_exponential_jitter

from model.base import Score, Scorer
from stream.batching import padded_tokens, split_by_tokens
from stream.dlq import DeadLetter, dead_letter
from stream.metrics import Health, Metrics
from stream.records import (
    INTERNAL_ERROR,
    Parsed,
    Record,
    Rejected,
    newest_rejection_per_key,
    next_versions,
    to_row,
    triage,
    versions_per_key,
)
from stream.sink import WriteResult

log = logging.getLogger(__name__)
T = TypeVar("T")


class Sink(Protocol):
    def write(self, rows: Sequence[dict[str, object]]) -> WriteResult: ...

    def record_rejections(self, rejections: Sequence[Rejected]) -> None: ...


class DeadLetterSender(Protocol):
    def send_dead_letters(self, topic: str, letters: Sequence[DeadLetter]) -> None: ...


class AbandonedError(RuntimeError):
    """Shutdown gave up on a batch that could not be completed; it must stay unacknowledged."""


@dataclass
class BatchOutcome:
    consumed: int = 0
    scored: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    dead: list[DeadLetter] = field(default_factory=list)
    model_seconds: float = 0.0
    db_seconds: float = 0.0


@dataclass
class Prepared:
    """A validated, scored batch waiting to be written."""

    records: Sequence[Record]
    rows: list[dict[str, object]]
    by_key: dict[str, Parsed]
    bad: list[Rejected]
    model_seconds: float
    fallbacks: dict[str, list[Parsed]] = field(default_factory=dict)  # older versions, newest first


CANARY_TEXT = "The order arrived on time and works as described."
"""A text any working model scores: when it fails too, the model is down, not the review bad."""


class ScorerUnavailableError(RuntimeError):
    """The model fails whatever it is given; the batch waits and retries instead of dead-lettering."""


@dataclass
class BatchProcessor:
    scorer: Scorer
    sink: Sink
    dead_letters: DeadLetterSender
    dlq_topic: str
    max_text_chars: int
    max_batch_tokens: int
    max_sub_batch: int
    retry_initial: float = 0.2
    retry_max: float = 10.0
    metrics: Metrics = field(default_factory=Metrics)
    health: Health = field(default_factory=Health)
    abandon: threading.Event = field(default_factory=threading.Event)
    # (time.monotonic(), messages) of the last batch landed: a full one says the consumer has a
    # backlog, and the search indexer waits while it does.
    last_batch: tuple[float, int] = (0.0, 0)
    # One caller of the model at a time: with STREAM_OVERLAP_WRITES, ``complete`` (writer thread)
    # scores an older version of a refused row while ``prepare`` scores the next batch, and a fast
    # tokenizer used from two threads raises "Already borrowed": a good review dead-lettered.
    _model: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def process(self, records: Sequence[Record]) -> BatchOutcome:
        return self.complete(self.prepare(records))

    def prepare(self, records: Sequence[Record]) -> Prepared:
        """Validate and score: the CPU half, which may overlap the previous batch's ``complete``."""
        good, bad = triage(records, self.max_text_chars)
        versions = versions_per_key(good)
        fallbacks = {group[0].message.review_key: group[1:] for group in versions if len(group) > 1}
        started = time.perf_counter()
        rows, by_key, failed = self._score_rows([group[0] for group in versions], fallbacks)
        model_seconds = time.perf_counter() - started
        return Prepared(records, rows, by_key, bad + failed, model_seconds, fallbacks)

    def complete(self, prepared: Prepared) -> BatchOutcome:
        """Upsert and dead-letter: the I/O half. Returns once the batch is durable."""
        outcome = BatchOutcome(consumed=len(prepared.records), model_seconds=prepared.model_seconds)
        rows, by_key, bad = prepared.rows, dict(prepared.by_key), list(prepared.bad)
        started = time.perf_counter()
        while rows:
            written = self._retry("write", partial(self.sink.write, rows))
            refused = [
                Rejected(by_key[row["review_key"]].record, "db_rejected", why, row["review_key"])
                for row, why in written.rejected
            ]
            bad.extend(refused)
            outcome.scored += len(rows) - len(written.rejected)
            outcome.inserted += written.inserted
            outcome.updated += written.updated
            outcome.unchanged += written.unchanged
            # Rare: a batch held an older version of a review the table refused; that one is next.
            rows, more, failed = self._score_rows(next_versions(refused, prepared.fallbacks), prepared.fallbacks)
            by_key.update(more)
            bad.extend(failed)
        outcome.db_seconds = time.perf_counter() - started
        keyed = newest_rejection_per_key(bad)
        if keyed:  # before the dead letters: a crash in between re-runs the batch, and this is idempotent
            self._retry("write", lambda: self.sink.record_rejections(keyed))

        outcome.dead = [dead_letter(rejected) for rejected in bad]
        if outcome.dead:
            self._retry("dead_letter", lambda: self.dead_letters.send_dead_letters(self.dlq_topic, outcome.dead))
        self._observe(prepared.records, outcome)
        return outcome

    def _score_rows(
        self, items: list[Parsed], fallbacks: dict[str, list[Parsed]]
    ) -> tuple[list[dict[str, object]], dict[str, Parsed], list[Rejected]]:
        """Rows of ``items``, and the rejections. A version the model (or the row mapping) refuses
        gives way to the next older version of its review, so whether a good message is kept does
        not depend on where the batch boundaries fell."""
        rows: list[dict[str, object]] = []
        by_key: dict[str, Parsed] = {}
        failed: list[Rejected] = []
        while items:
            scored, refused, sub_batch_tokens = self._retry("score", partial(self._score_alone, items))
            for padded in sub_batch_tokens:  # observed once, from the attempt that succeeded
                self.metrics.batch_tokens.observe(padded)
            for item, score in scored:
                try:
                    rows.append(to_row(item, score))
                except Exception as exc:  # noqa: BLE001 - one unmappable review must not hold back the batch
                    detail = f"{type(exc).__name__}: {exc}"[:1000]
                    refused.append(Rejected(item.record, INTERNAL_ERROR, detail, item.message.review_key))
                    continue
                by_key[item.message.review_key] = item
            failed.extend(refused)
            items = next_versions(refused, fallbacks)
        return rows, by_key, failed

    # -- scoring -------------------------------------------------------------------------------

    def _score_alone(self, items: list[Parsed]) -> tuple[list[tuple[Parsed, Score]], list[Rejected], list[int]]:
        with self._model:
            return self._score(items)

    def _score(self, items: list[Parsed]) -> tuple[list[tuple[Parsed, Score]], list[Rejected], list[int]]:
        """Scores, rejections, and the padded token count of each sub-batch (for the histogram)."""
        if not items:
            return [], [], []
        scored: list[tuple[Parsed, Score]] = []
        failed: list[Rejected] = []
        padded: list[int] = []
        items, tokens = self._count_tokens(items, failed)
        indexed = list(enumerate(tokens))
        for sub_batch in split_by_tokens(indexed, self.max_batch_tokens, self.max_sub_batch):
            padded.append(padded_tokens([tokens[i] for i in sub_batch]))
            self._score_isolating([items[i] for i in sub_batch], scored, failed)
        return scored, failed, padded

    def _count_tokens(self, items: list[Parsed], failed: list[Rejected]) -> tuple[list[Parsed], list[int]]:
        """Token counts for the batch; a text the tokenizer fails on is dead-lettered like one the
        model fails on (after the canary check), instead of failing the whole batch for ever."""
        try:
            return items, list(self.scorer.count_tokens([item.message.text for item in items]))
        except Exception as exc:  # noqa: BLE001 - find the text(s) that cause it
            self._check_scorer(exc)
        kept: list[Parsed] = []
        tokens: list[int] = []
        for item in items:
            try:
                (count,) = self.scorer.count_tokens([item.message.text])
            except Exception as exc:  # noqa: BLE001 - this text's own failure
                log.warning("tokenizing failed for %s: %r", item.message.review_key, exc)
                detail = f"{type(exc).__name__}: {exc}"[:1000]
                failed.append(Rejected(item.record, "scoring_failed", detail, item.message.review_key))
                continue
            kept.append(item)
            tokens.append(count)
        return kept, tokens

    def _score_isolating(
        self, items: list[Parsed], scored: list[tuple[Parsed, Score]], failed: list[Rejected], top: bool = True
    ) -> None:
        """A text the model cannot score is bisected out and dead-lettered; its neighbours are scored.

        Bisection also rescues a sub-batch too large for the device (halves fit). But a model that
        fails on everything (a lost GPU, a broken session) must not bisect the batch into dead
        letters: before one text is dead-lettered, a known-good text is scored, and when that fails
        too the failure is the model's, raised for ``_retry`` to wait out. The same check runs when
        a whole sub-batch fails, so a model that is down costs one failed call, not a bisection.
        """
        try:
            scores = self.scorer.predict([item.message.text for item in items])
            if len(scores) != len(items):
                raise RuntimeError(f"the scorer returned {len(scores)} scores for {len(items)} texts")
        except Exception as exc:  # noqa: BLE001 - any model failure: isolate the text that causes it
            if top or len(items) == 1:
                self._check_scorer(exc)
            if len(items) == 1:
                log.warning("scoring failed for %s: %r", items[0].message.review_key, exc)
                detail = f"{type(exc).__name__}: {exc}"[:1000]
                failed.append(Rejected(items[0].record, "scoring_failed", detail, items[0].message.review_key))
                return
            middle = len(items) // 2
            self._score_isolating(items[:middle], scored, failed, top=False)
            self._score_isolating(items[middle:], scored, failed, top=False)
            return
        scored.extend(zip(items, scores, strict=True))

    def _check_scorer(self, cause: Exception) -> None:
        try:
            self.scorer.predict([CANARY_TEXT])
        except Exception as exc:  # noqa: BLE001 - whatever it is, the model is not working
            raise ScorerUnavailableError(f"the scorer fails on a known-good text too: {exc!r}") from cause

    # -- retries -------------------------------------------------------------------------------

    def _retry(self, operation: str, action: Callable[[], T]) -> T:
        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            problem = f"{operation} failing: {type(error).__name__}: {error}"[:500]
            self.health.failing(operation, problem)
            self.metrics.retries.labels(operation).inc()
            log.warning("%s (attempt %d), retrying", problem, state.attempt_number)

        retrying = Retrying(
            retry=retry_if_exception(lambda exc: not isinstance(exc, AbandonedError)),
            wait=wait_exponential_jitter(multiplier=self.retry_initial, max=self.retry_max),
            stop=lambda _state: self.abandon.is_set(),
            sleep=self._sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            result: T = retrying(action)
        except Exception as exc:
            if self.abandon.is_set():
                raise AbandonedError(f"{operation} abandoned at shutdown: {exc}") from exc
            raise
        if self.health.ok(operation):
            log.info("%s recovered", operation)
        return result

    def _sleep(self, seconds: float) -> None:
        if self.abandon.wait(seconds):
            raise AbandonedError("shutdown while waiting to retry")

    def _observe(self, records: Sequence[Record], outcome: BatchOutcome) -> None:
        self.last_batch = (time.monotonic(), outcome.consumed)
        m = self.metrics
        m.consumed.inc(outcome.consumed)
        m.scored.inc(outcome.scored)
        for letter in outcome.dead:
            m.dead_lettered.labels(letter.reason).inc()
        m.rows.labels("inserted").inc(outcome.inserted)
        m.rows.labels("updated").inc(outcome.updated)
        m.rows.labels("unchanged").inc(outcome.unchanged)
        m.batch_size.observe(outcome.consumed)
        m.model_seconds.observe(outcome.model_seconds)
        m.db_seconds.observe(outcome.db_seconds)
        now = time.time()
        for record in records:
            # A replay carries its original time: days old, and not this pipeline's latency.
            if record.timestamp and not record.replayed:
                m.latency.observe(max(0.0, now - record.timestamp))
