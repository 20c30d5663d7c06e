"""split_by_tokens: pure batching by padded-token budget and count (no broker, no model)."""

from __future__ import annotations

import random

import pytest

from stream.batching import padded_tokens, split_by_tokens


def test_short_texts_fill_a_sub_batch_up_to_the_count_limit() -> None:
    items = [(i, 10) for i in range(10)]
    assert split_by_tokens(items, max_tokens=1000, max_items=4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_padded_cost_of_every_sub_batch_stays_within_the_budget() -> None:
    rng = random.Random(7)
    lengths = {i: rng.choice([8, 12, 30, 64, 200, 512]) for i in range(300)}
    batches = split_by_tokens(list(lengths.items()), max_tokens=2048, max_items=64)
    for batch in batches:
        assert len(batch) <= 64
        assert padded_tokens([lengths[i] for i in batch]) <= 2048
    assert sorted(i for batch in batches for i in batch) == list(range(300))


def test_long_reviews_are_grouped_together_not_padded_into_short_ones() -> None:
    items = [("short-a", 10), ("long", 500), ("short-b", 12), ("short-c", 9)]
    assert split_by_tokens(items, max_tokens=600, max_items=8) == [["short-c", "short-a", "short-b"], ["long"]]


def test_a_review_longer_than_the_whole_budget_travels_alone() -> None:
    items = [("a", 5), ("huge", 10_000), ("b", 5)]
    assert split_by_tokens(items, max_tokens=100, max_items=8) == [["a", "b"], ["huge"]]


def test_equal_lengths_keep_their_input_order_and_empty_input_gives_nothing() -> None:
    assert split_by_tokens([("x", 3), ("y", 3), ("z", 3)], max_tokens=6, max_items=8) == [["x", "y"], ["z"]]
    assert split_by_tokens([], max_tokens=10, max_items=2) == []


def test_nonsense_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        split_by_tokens([("a", 1)], max_tokens=0, max_items=1)
