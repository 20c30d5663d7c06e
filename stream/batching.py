"""Pure batching: split one micro-batch into model sub-batches by padded-token budget and count.

Reviews run from 5 to 5,000 words and a forward pass pads every text to the longest one in
its sub-batch, so the cost of a sub-batch is ``len(sub_batch) * max(tokens)``. Sorting by
length first keeps long reviews together and short ones cheap (text-embeddings-inference caps
its queue the same way). No I/O here: tested as a function, without a broker or a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def split_by_tokens(items: Sequence[tuple[T, int]], max_tokens: int, max_items: int) -> list[list[T]]:
    """Group ``(item, tokens)`` pairs into sub-batches whose padded size stays within budget.

    Every sub-batch holds at most ``max_items`` items and ``len * longest <= max_tokens``,
    except that an item longer than the whole budget travels alone (it must still be scored;
    the model truncates it). Items are ordered by token count, ties keep their input order,
    so the result is deterministic.
    """
    if max_tokens < 1 or max_items < 1:
        raise ValueError("max_tokens and max_items must be positive")
    ordered = sorted(items, key=lambda pair: pair[1])
    batches: list[list[T]] = []
    current: list[T] = []
    longest = 0
    for item, tokens in ordered:
        tokens = max(tokens, 1)
        widest = max(longest, tokens)
        if current and (len(current) + 1 > max_items or (len(current) + 1) * widest > max_tokens):
            batches.append(current)
            current, widest = [], tokens
        current.append(item)
        longest = widest
    if current:
        batches.append(current)
    return batches


def padded_tokens(token_counts: Sequence[int]) -> int:
    """What a sub-batch costs the model: every text padded to the longest."""
    return len(token_counts) * max(token_counts, default=0)
