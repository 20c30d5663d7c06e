"""Pure batching of texts for a forward pass: sort by length, cap by padded tokens and by count.

Reviews run from five to thousands of words; padding a batch to its longest member makes one long
review cost as much as the whole batch. Like text-embeddings-inference's queue, a sub-batch is
closed when either its padded token count or its size would pass the limit.
"""

from __future__ import annotations

from collections.abc import Sequence


def plan_batches(lengths: Sequence[int], max_tokens: int, max_items: int) -> list[list[int]]:
    """Indices of ``lengths`` grouped into sub-batches, shortest first.

    Each sub-batch satisfies ``len(batch) <= max_items`` and ``len(batch) * longest <= max_tokens``,
    except that an item longer than ``max_tokens`` on its own still gets a batch of one.
    """
    if max_tokens < 1 or max_items < 1:
        raise ValueError("max_tokens and max_items must be positive")
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for index in order:
        length = max(1, lengths[index])
        grown = max(longest, length)
        if current and (len(current) + 1 > max_items or grown * (len(current) + 1) > max_tokens):
            batches.append(current)
            current, grown = [], length
        current.append(index)
        longest = grown
    if current:
        batches.append(current)
    return batches


def padded_tokens(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> int:
    """Total tokens a plan pushes through the model, padding included (for benchmarks and tests)."""
    return sum(len(batch) * max(lengths[i] for i in batch) for batch in batches if batch)
