"""Pure batching: split one micro-batch into model sub-batches by padded-token budget and count.

Reviews run from 5 to 5,000 words and a forward pass pads every text to the longest one in
its sub-batch, so the cost of a sub-batch is ``len(sub_batch) * max(tokens)``. Sorting by
length first keeps long reviews together and short ones cheap (text-embeddings-inference caps
its queue the same way). No I/O here: tested as a function, without a broker or a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from model.batching import plan_batches

T = TypeVar("T")


def split_by_tokens(items: Sequence[tuple[T, int]], max_tokens: int, max_items: int) -> list[list[T]]:
    """Group ``(item, tokens)`` pairs into sub-batches whose padded size stays within budget.

    Every sub-batch holds at most ``max_items`` items and ``len * longest <= max_tokens``,
    except that an item longer than the whole budget travels alone (it must still be scored;
    the model truncates it). Items are ordered by token count, ties keep their input order,
    so the result is deterministic. The plan is the Scorer's own (``model.batching``), so the
    worker's sub-batches and the model's agree on what a batch costs.
    """
    plan = plan_batches([tokens for _, tokens in items], max_tokens, max_items)
    return [[items[index][0] for index in batch] for batch in plan]


def padded_tokens(token_counts: Sequence[int]) -> int:
    """What a sub-batch costs the model: every text padded to the longest."""
    return len(token_counts) * max(token_counts, default=0)
