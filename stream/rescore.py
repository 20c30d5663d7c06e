"""Re-score stored rows with another model version: batched, keyset-paged, resumable.

Rows are read in id order after the last id seen, skipping rows already at the target
version, so an interrupted run resumes where it stopped and a finished run is a no-op. Each
batch is one UPDATE … FROM (VALUES …) round trip that sets the scores and ``updated_on``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from sqlalchemy import Engine, text

from model.base import Scorer
from stream.batching import split_by_tokens
from stream.sink import execute_values_committed

_PENDING = text("SELECT count(*) FROM sentiments WHERE model_version IS DISTINCT FROM :version")
_PAGE = text(
    "SELECT id, sentence FROM sentiments WHERE id > :after AND model_version IS DISTINCT FROM :version "
    "ORDER BY id LIMIT :size"
)
# ``s.sentence = v.sentence``: a row edited by the worker between this job's read and its write
# keeps the worker's scores for the new text (the next run re-scores it), never this job's
# scores of the old text.
_UPDATE = (
    "UPDATE sentiments AS s SET sentiment_score = v.sentiment_score, confidence = v.confidence, "
    "label = v.label, suggested_rating = v.suggested_rating, model_version = v.model_version, updated_on = now() "
    "FROM (VALUES %s) AS v (id, sentence, sentiment_score, confidence, label, suggested_rating, model_version) "
    "WHERE s.id = v.id AND s.sentence = v.sentence AND s.model_version IS DISTINCT FROM v.model_version"
)


def pending_rows(engine: Engine, version: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(_PENDING, {"version": version}).scalar_one())


def rescore_rows(
    engine: Engine,
    scorer: Scorer,
    *,
    batch_size: int = 256,
    limit: int | None = None,
    max_batch_tokens: int = 16_384,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Bring rows to ``scorer.model_version``; returns how many were updated."""
    version = scorer.model_version
    after, done = 0, 0
    while limit is None or done < limit:
        size = batch_size if limit is None else min(batch_size, limit - done)
        with engine.connect() as conn:
            page = conn.execute(_PAGE, {"after": after, "version": version, "size": size}).all()
        if not page:
            break
        ids = [row.id for row in page]
        texts = [row.sentence for row in page]
        tokens = scorer.count_tokens(texts)
        values: list[tuple[int, str, float, float, str, int, str]] = []
        for sub_batch in split_by_tokens(list(enumerate(tokens)), max_batch_tokens, batch_size):
            scores = scorer.predict([texts[i] for i in sub_batch])
            values.extend(
                (ids[i], texts[i], s.sentiment_score, s.confidence, s.label, s.suggested_rating, s.model_version)
                for i, s in zip(sub_batch, scores, strict=True)
            )
        _update_retrying_deadlocks(engine, values)
        after = ids[-1]
        done += len(page)
        if on_progress:
            on_progress(len(page))
    return done


def _update_retrying_deadlocks(engine: Engine, values: Sequence[tuple[object, ...]], attempts: int = 5) -> None:
    """The page's UPDATE; retried when PostgreSQL breaks a deadlock by aborting it.

    The rollups' statement-level triggers lock rollup rows per statement phase (an upsert fires
    its UPDATE triggers, then its INSERT ones), so this job and a worker writing the same brands
    and days can deadlock; PostgreSQL aborts one, and the aborted page is simply run again.
    """
    from psycopg2.errors import DeadlockDetected  # type: ignore[import-untyped,unused-ignore]

    for attempt in range(1, attempts + 1):
        try:
            execute_values_committed(engine, _UPDATE, values)
            return
        except DeadlockDetected:
            if attempt == attempts:
                raise
            time.sleep(0.05 * 2**attempt)
