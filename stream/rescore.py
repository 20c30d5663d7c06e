"""Re-score stored rows with another model version: batched, keyset-paged, resumable.

Rows are read in id order after the last id seen, skipping rows already at the target
version, so an interrupted run resumes where it stopped and a finished run is a no-op. Each
batch is one UPDATE … FROM (VALUES …) round trip that sets the scores and ``updated_on``.

A row the new model cannot score, or whose new scores the table refuses, is bisected out of its
page like the worker does (``stream.pipeline``), logged and skipped: it keeps its old scores and
the job goes on, so no single row stops every run at the same page. Skipped rows are still not
at the new version; each run tries them again and reports them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine, text

from model.base import Score, Scorer
from stream.batching import split_by_tokens
from stream.pipeline import CANARY_TEXT, ScorerUnavailableError
from stream.sink import execute_values_committed, is_row_error

log = logging.getLogger(__name__)

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


@dataclass
class RescoreResult:
    rescored: int = 0  # rows read and written at the new version (or left to an edit that came meanwhile)
    skipped: dict[int, str] = field(default_factory=dict)  # id -> why the model or the table refused it


Values = tuple[int, str, float, float, str, int, str]


def rescore_rows(
    engine: Engine,
    scorer: Scorer,
    *,
    batch_size: int = 256,
    limit: int | None = None,
    max_batch_tokens: int = 16_384,
    on_progress: Callable[[int, int], None] | None = None,
) -> RescoreResult:
    """Bring rows to ``scorer.model_version``; rows that cannot get there are skipped and reported.

    ``limit`` bounds the rows re-scored, not the rows read: skipped rows do not count toward it.
    ``on_progress(rescored, skipped)`` is called after each page.

    Raises ``ScorerUnavailableError`` when the model fails on a known-good text too: then it is
    down, not the rows bad, and skipping them all would only hide that.
    """
    version = scorer.model_version
    after = 0
    result = RescoreResult()
    # ``limit`` counts rows brought to the new version: a page of rows the model refuses moves
    # ``after`` past them, so a limited run never stalls on the same failing rows.
    while limit is None or result.rescored < limit:
        size = batch_size if limit is None else min(batch_size, limit - result.rescored)
        with engine.connect() as conn:
            page = conn.execute(_PAGE, {"after": after, "version": version, "size": size}).all()
        if not page:
            break
        ids = [int(row.id) for row in page]
        texts = [str(row.sentence) for row in page]
        failed: dict[int, str] = {}
        scores = _score_isolating_rows(scorer, texts, max_batch_tokens, batch_size, failed)
        values: list[Values] = [
            (ids[i], texts[i], s.sentiment_score, s.confidence, s.label, s.suggested_rating, s.model_version)
            for i, s in sorted(scores.items())
        ]
        skipped = {ids[i]: why for i, why in failed.items()}
        _update_isolating(engine, values, skipped)
        for row_id, why in sorted(skipped.items()):
            log.warning("rescore skipped row %d: %s", row_id, why)
        result.skipped.update(skipped)
        result.rescored += len(page) - len(skipped)
        after = ids[-1]
        if on_progress:
            on_progress(len(page) - len(skipped), len(skipped))
    return result


def _score_isolating_rows(
    scorer: Scorer, texts: list[str], max_batch_tokens: int, max_items: int, failed: dict[int, str]
) -> dict[int, Score]:
    """Scores by index into ``texts``; an index the tokenizer or the model fails on goes to ``failed``."""
    try:
        tokens = list(scorer.count_tokens(texts))
    except Exception as exc:  # noqa: BLE001 - find the text(s) that cause it
        _check_scorer(scorer, exc)
        tokens = []
        for i, one in enumerate(texts):
            try:
                (count,) = scorer.count_tokens([one])
            except Exception as one_exc:  # noqa: BLE001 - this text's own failure
                failed[i] = _why(one_exc)
                count = 0
            tokens.append(count)
    scores: dict[int, Score] = {}
    indexed = [(i, count) for i, count in enumerate(tokens) if i not in failed]
    for sub_batch in split_by_tokens(indexed, max_batch_tokens, max_items):
        _predict_isolating(scorer, sub_batch, texts, scores, failed, top=True)
    return scores


def _predict_isolating(
    scorer: Scorer, batch: list[int], texts: list[str], scores: dict[int, Score], failed: dict[int, str], top: bool
) -> None:
    """Bisect a sub-batch the model fails on down to the texts that cause it (as the worker does)."""
    try:
        result = scorer.predict([texts[i] for i in batch])
        if len(result) != len(batch):
            raise RuntimeError(f"the scorer returned {len(result)} scores for {len(batch)} texts")
    except Exception as exc:  # noqa: BLE001 - any model failure: isolate the text that causes it
        if top or len(batch) == 1:
            _check_scorer(scorer, exc)
        if len(batch) == 1:
            failed[batch[0]] = _why(exc)
            return
        middle = len(batch) // 2
        _predict_isolating(scorer, batch[:middle], texts, scores, failed, top=False)
        _predict_isolating(scorer, batch[middle:], texts, scores, failed, top=False)
        return
    scores.update(zip(batch, result, strict=True))


def _check_scorer(scorer: Scorer, cause: Exception) -> None:
    try:
        scorer.predict([CANARY_TEXT])
    except Exception as exc:  # noqa: BLE001 - whatever it is, the model is not working
        raise ScorerUnavailableError(f"the model fails on a known-good text too: {exc!r}") from cause


def _update_isolating(engine: Engine, values: list[Values], refused: dict[int, str]) -> None:
    """The page's UPDATE; rows the table refuses (a failed check) are bisected out into ``refused``."""
    if not values:
        return
    try:
        _update_retrying_deadlocks(engine, values)
    except Exception as exc:
        if not is_row_error(exc):
            raise
        if len(values) == 1:
            refused[values[0][0]] = _why(exc)
            return
        middle = len(values) // 2
        _update_isolating(engine, values[:middle], refused)
        _update_isolating(engine, values[middle:], refused)


def _why(exc: BaseException) -> str:
    first = (str(exc).strip() or type(exc).__name__).splitlines()[0]
    return f"{type(exc).__name__}: {first}"[:500]


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
