"""Where the worker's Scorer comes from: the model package, or a factory named in settings."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from model.base import Score, Scorer


def import_scorer(spec: str) -> Scorer:
    """Build a Scorer from ``'module:factory'`` (a callable with no required arguments)."""
    module_name, _, attribute = spec.partition(":")
    factory: Any = getattr(importlib.import_module(module_name), attribute)
    scorer = factory()
    if not isinstance(scorer, Scorer):
        raise TypeError(f"{spec} returned {type(scorer).__name__}, which is not a Scorer")
    return scorer


def load_worker_scorer(spec: str | None, model_path: Path | None) -> Scorer:
    """``spec`` wins when set; otherwise ``model.load_scorer`` (MODEL_PATH, or the default model)."""
    if spec:
        return import_scorer(spec)
    from model import load_scorer  # type: ignore[attr-defined,unused-ignore]

    scorer: Scorer = load_scorer(model_path)  # refuses labels the table could not store
    return scorer


class NoopScorer:
    """Scores nothing: a constant neutral score. Measures the pipeline without a model
    (``STREAM_SCORER=stream.scorers:NoopScorer``), as the benchmark's row (c) does."""

    model_version = "noop"

    def predict(self, texts: Sequence[str]) -> list[Score]:
        return [Score("neutral", 0.5, 1.0, 3, "noop") for _ in texts]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(t) // 4 + 2 for t in texts]
