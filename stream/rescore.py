"""Re-score stored rows with another model version: batched, keyset-paged, resumable.

Rows are read in id order after the last id seen, skipping rows already at the target
version, so an interrupted run resumes where it stopped and a finished run is a no-op. Each
batch is one UPDATE … FROM (VALUES …) round trip that sets the scores and ``updated_on``.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine, text

from model.base import Scorer
from stream.batching import split_by_tokens
from stream.sink import execute_values_committed

_PENDING = text("SELECT count(*) FROM sentiments WHERE model_version IS DISTINCT FROM :version")
_PAGE = text(
    "SELECT id, sentence FROM sentiments WHERE id > :after AND model_version IS DISTINCT FROM :version "
    "ORDER BY id LIMIT :size"
)
_UPDATE = (
    "UPDATE sentiments AS s SET sentiment_score = v.sentiment_score, confidence = v.confidence, "
    "label = v.label, suggested_rating = v.suggested_rating, model_version = v.model_version, updated_on = now() "
    "FROM (VALUES %s) AS v (id, sentiment_score, confidence, label, suggested_rating, model_version) "
    "WHERE s.id = v.id AND s.model_version IS DISTINCT FROM v.model_version"
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
        values: list[tuple[int, float, float, str, int, str]] = []
        for sub_batch in split_by_tokens(list(enumerate(tokens)), max_batch_tokens, batch_size):
            scores = scorer.predict([texts[i] for i in sub_batch])
            values.extend(
                (ids[i], s.sentiment_score, s.confidence, s.label, s.suggested_rating, s.model_version)
                for i, s in zip(sub_batch, scores, strict=True)
            )
        execute_values_committed(engine, _UPDATE, values)
        after = ids[-1]
        done += len(page)
        if on_progress:
            on_progress(len(page))
    return done
