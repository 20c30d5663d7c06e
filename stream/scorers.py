"""Where the worker's Scorer comes from: the model package, or a factory named in settings."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from model.base import Scorer


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

    scorer: Scorer = load_scorer(model_path)
    return scorer
