"""Tokenizing and padding without importing transformers or torch.

The ONNX int8 scorer is what a CPU worker loads; importing transformers' auto classes to get
its tokenizer cost ~10 s of start-up (measured: ``load_scorer()`` 10.6 s, of which 11.7 s
cumulative under cProfile in ``AutoTokenizer``). The same ``tokenizer.json`` read by the Rust
``tokenizers`` library directly gives identical ids (a test checks) in well under a second.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt


class FastTokenizer:
    """The artifact's ``tokenizer.json``, truncating to ``max_length`` with special tokens counted."""

    def __init__(self, directory: Path) -> None:
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._lock = threading.Lock()  # truncation is tokenizer state; scorers may be shared by threads
        config_path = directory / "tokenizer_config.json"
        config: dict[str, Any] = json.loads(config_path.read_text(encoding="utf-8")) if config_path.exists() else {}
        pad = config.get("pad_token", "[PAD]")
        if isinstance(pad, dict):
            pad = pad.get("content", "[PAD]")
        self.pad_token_id = self._tokenizer.token_to_id(str(pad)) or 0

    def encode(self, texts: Sequence[str], max_length: int) -> list[list[int]]:
        if not texts:
            return []
        with self._lock:
            self._tokenizer.enable_truncation(max_length)
            encodings = self._tokenizer.encode_batch(list(texts))
        return [encoding.ids for encoding in encodings]


def encode(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids with special tokens, truncated, unpadded, from either tokenizer kind."""
    if not texts:
        return []
    if isinstance(tokenizer, FastTokenizer):
        return tokenizer.encode(texts, max_length)
    ids: list[list[int]] = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    return ids


def pad_batch(batch: Sequence[Sequence[int]], pad_id: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(input_ids, attention_mask) padded on the right to the batch's longest member."""
    width = max(len(ids) for ids in batch)
    input_ids = np.full((len(batch), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(batch), width), dtype=np.int64)
    for row, ids in enumerate(batch):
        input_ids[row, : len(ids)] = ids
        mask[row, : len(ids)] = 1
    return input_ids, mask
