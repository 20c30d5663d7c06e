"""Labeled review data: read a file, map its labels onto a scheme, clean, dedupe, split.

Everything after reading is a pure function of lists, so the training and evaluation code (and
the tests) never care whether the rows came from CSV, JSON lines, Parquet or a dataset hub.
"""

from __future__ import annotations

import csv
import hashlib
import html
import json
import random
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from model.base import LABELS_2, LABELS_3

LabelScheme = Literal["binary", "stars3"]
SCHEMES: dict[str, tuple[str, ...]] = {"binary": LABELS_2, "stars3": LABELS_3}
# Names a file may use for its labels, mapped to the canonical ones.
_LABEL_ALIASES = {
    "neg": "negative",
    "negative": "negative",
    "bad": "negative",
    "neu": "neutral",
    "neutral": "neutral",
    "average": "neutral",
    "pos": "positive",
    "positive": "positive",
    "good": "positive",
}
_CONTROL = re.compile(r"[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f\u200b\ufeff]")
_SPACES = re.compile(r"\s+")


class DataError(ValueError):
    """A data file that cannot be used as asked (missing column, unknown label, empty)."""


@dataclass(frozen=True, slots=True)
class DataSource:
    """One labeled file and how to read it; several sources are mixed for training."""

    path: str
    text_column: str = "text"
    label_column: str | None = "label"
    stars_column: str | None = None
    # The scheme the file's integer labels are in; None: inferred (0/1 binary, 0/1/2 stars3).
    source_scheme: LabelScheme | None = None
    # Cap on examples kept per class (class-balanced subsample), None: all.
    max_per_class: int | None = None
    name: str | None = None

    @property
    def display_name(self) -> str:
        """The given name, else the file stem (prefixed by its folder for generic names like train.csv)."""
        path = Path(self.path)
        if self.name:
            return self.name
        if path.stem in {"train", "test", "validation", "valid", "dev", "reviews", "data"} and path.parent.name:
            return f"{path.parent.name}_{path.stem}"
        return path.stem


@dataclass(slots=True)
class LabeledData:
    """Texts with label indices into ``label_names``; ``sources`` records where rows came from."""

    texts: list[str]
    labels: list[int]
    label_names: tuple[str, ...]
    sources: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)

    def balance(self) -> dict[str, int]:
        return class_balance(self.labels, self.label_names)


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a CSV, JSON-lines or Parquet file; ``hf:NAME[:SPLIT]`` reads a hub dataset (online only)."""
    spec = str(path)
    if spec.startswith("hf:"):
        return _read_hub(spec[3:])
    file = Path(spec)
    if not file.is_file():
        raise DataError(f"{file}: no such file")
    suffix = file.suffix.lower()
    if suffix in {".csv", ".tsv"}:
        with file.open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ","))
    if suffix in {".jsonl", ".ndjson", ".json"}:
        with file.open(encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        rows: list[dict[str, Any]] = pq.read_table(file).to_pylist()
        return rows
    raise DataError(f"{file}: unsupported format {suffix!r} (csv, tsv, jsonl, parquet)")


def _read_hub(name: str) -> list[dict[str, Any]]:
    """Optional path for users who are online; nothing in the project depends on it."""
    try:
        import datasets
    except ImportError as exc:
        raise DataError("reading hf:NAME needs the `datasets` package (pip install datasets)") from exc
    dataset_name, _, split = name.partition(":")
    rows: list[dict[str, Any]] = list(datasets.load_dataset(dataset_name, split=split or "train"))
    return rows


def file_sha256(path: str | Path) -> str | None:
    file = Path(path)
    if not file.is_file():
        return None
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def clean_text(text: str) -> str:
    """Undo HTML escaping, drop control characters, collapse whitespace; keep case, punctuation, emoji.

    Subword tokenizers and the char-CNN both use case and punctuation ("!!!", ":(") as signal,
    so nothing else is stripped.
    """
    text = unicodedata.normalize("NFC", html.unescape(text))
    return _SPACES.sub(" ", _CONTROL.sub("", text)).strip()


def stars_to_label(stars: int, scheme: LabelScheme) -> str | None:
    """1-2 stars negative, 3 neutral (dropped for binary), 4-5 positive."""
    if not 1 <= stars <= 5:
        raise DataError(f"stars must be 1-5, got {stars}")
    if stars <= 2:
        return "negative"
    if stars == 3:
        return "neutral" if scheme == "stars3" else None
    return "positive"


def infer_scheme(values: Iterable[Any]) -> LabelScheme:
    """Integer labels 0/1 are binary, 0/1/2 three-class; label names decide by themselves."""
    seen = {str(value).strip().lower() for value in values}
    if seen <= {"0", "1"}:
        return "binary"
    if seen <= {"0", "1", "2"}:
        return "stars3"
    names = {_LABEL_ALIASES.get(value) for value in seen}
    if None not in names:
        return "stars3" if "neutral" in names else "binary"
    raise DataError(f"cannot infer the label scheme from values {sorted(seen)[:10]}")


def label_name(value: Any, source_scheme: LabelScheme) -> str:
    """A raw label value (index in the source scheme, or a name) as a canonical label name."""
    raw = str(value).strip().lower()
    if raw in _LABEL_ALIASES:
        return _LABEL_ALIASES[raw]
    try:
        index = int(float(raw))
    except ValueError as exc:
        raise DataError(f"unknown label {value!r}") from exc
    names = SCHEMES[source_scheme]
    if not 0 <= index < len(names):
        raise DataError(f"label {index} out of range for scheme {source_scheme} {names}")
    return names[index]


def map_label(name: str, target: Sequence[str]) -> int | None:
    """Index of ``name`` in the target labels; None when the target cannot express it (neutral -> binary)."""
    return target.index(name) if name in target else None


def to_labeled(rows: Sequence[dict[str, Any]], source: DataSource, scheme: LabelScheme, seed: int = 42) -> LabeledData:
    """Map rows onto ``scheme``: clean, drop empties and unmappable labels, dedupe, optionally subsample."""
    target = SCHEMES[scheme]
    if not rows:
        raise DataError(f"{source.path}: no rows")
    columns = set(rows[0])
    if source.text_column not in columns:
        raise DataError(f"{source.path}: no text column {source.text_column!r} (columns: {sorted(columns)})")
    use_stars = source.stars_column is not None
    label_column = source.stars_column if use_stars else source.label_column
    if label_column is None or label_column not in columns:
        raise DataError(f"{source.path}: no label column {label_column!r} (columns: {sorted(columns)})")
    source_scheme = source.source_scheme or (None if use_stars else infer_scheme(r[label_column] for r in rows))
    texts: list[str] = []
    labels: list[int] = []
    seen: set[str] = set()
    for row in rows:
        text = clean_text(str(row[source.text_column] or ""))
        raw = row[label_column]
        if not text or raw is None or str(raw).strip() == "" or text in seen:
            continue
        if use_stars:
            name = stars_to_label(int(float(raw)), scheme)
        else:
            assert source_scheme is not None
            name = label_name(raw, source_scheme)
        index = None if name is None else map_label(name, target)
        if index is None:
            continue
        seen.add(text)
        texts.append(text)
        labels.append(index)
    data = LabeledData(texts, labels, target)
    if source.max_per_class is not None:
        data = subsample_per_class(data, source.max_per_class, seed)
    data.sources = [
        {
            "name": source.display_name,
            "path": source.path,
            "sha256": file_sha256(source.path),
            "rows": len(rows),
            "used": len(data),
            "balance": data.balance(),
        }
    ]
    return data


def load_labeled(source: DataSource, scheme: LabelScheme, seed: int = 42) -> LabeledData:
    return to_labeled(read_rows(source.path), source, scheme, seed)


def subsample_per_class(data: LabeledData, cap: int, seed: int) -> LabeledData:
    """Keep at most ``cap`` examples of each class, chosen at random with ``seed``; order preserved."""
    rng = random.Random(seed)
    keep: set[int] = set()
    for label in range(len(data.label_names)):
        members = [i for i, y in enumerate(data.labels) if y == label]
        keep.update(rng.sample(members, cap) if len(members) > cap else members)
    order = sorted(keep)
    return replace(data, texts=[data.texts[i] for i in order], labels=[data.labels[i] for i in order])


def concat(parts: Sequence[LabeledData]) -> LabeledData:
    if not parts:
        raise DataError("nothing to concatenate")
    names = parts[0].label_names
    if any(p.label_names != names for p in parts):
        raise DataError("cannot mix label schemes")
    return LabeledData(
        [t for p in parts for t in p.texts],
        [y for p in parts for y in p.labels],
        names,
        [s for p in parts for s in p.sources],
    )


def stratified_split(data: LabeledData, fractions: Sequence[float], seed: int = 42) -> list[LabeledData]:
    """Split into ``len(fractions) + 1`` parts; each fraction is taken per class, the rest comes first.

    ``stratified_split(d, [0.1, 0.1])`` gives train/validation/test of 80/10/10 with every class in
    the same proportion in each part.
    """
    if sum(fractions) >= 1 or any(f < 0 for f in fractions):
        raise DataError(f"fractions must be non-negative and sum below 1, got {list(fractions)}")
    rng = random.Random(seed)
    buckets: list[list[int]] = [[] for _ in range(len(fractions) + 1)]
    for label in range(len(data.label_names)):
        members = [i for i, y in enumerate(data.labels) if y == label]
        rng.shuffle(members)
        start = 0
        for part, fraction in enumerate(fractions, start=1):
            count = round(len(members) * fraction)
            buckets[part].extend(members[start : start + count])
            start += count
        buckets[0].extend(members[start:])
    parts = []
    for indices in buckets:
        indices.sort()
        parts.append(LabeledData([data.texts[i] for i in indices], [data.labels[i] for i in indices], data.label_names))
    parts[0].sources = data.sources
    return parts


def class_balance(labels: Sequence[int], names: Sequence[str]) -> dict[str, int]:
    counts = Counter(labels)
    return {name: counts.get(i, 0) for i, name in enumerate(names)}


def class_weights(labels: Sequence[int], num_classes: int, power: float = 1.0) -> list[float]:
    """Inverse-frequency weights, raised to ``power`` (absent classes weigh 0).

    ``power`` 1 makes every class count equally in the loss; 0.5 leans the same way but keeps
    some of the prior, which suits data that is skewed in the field too.
    """
    counts = Counter(labels)
    total = len(labels)
    present = [c for c in range(num_classes) if counts.get(c)]
    return [(total / (len(present) * counts[c])) ** power if counts.get(c) else 0.0 for c in range(num_classes)]
