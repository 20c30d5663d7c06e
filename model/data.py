"""Labeled review data: read a file, map its labels onto a scheme, clean, dedupe, split.

Everything after reading is a pure function of lists, so the training and evaluation code (and
the tests) never care whether the rows came from CSV, JSON lines, Parquet or a dataset hub.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, cast

from core.delimited import csv_records, tsv_records
from core.text import clean_text, not_utf8
from model.base import LABELS_2, LABELS_3

log = logging.getLogger(__name__)

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
    # A boolean label column (``recommended``, ``is_positive``) says positive or not.
    "true": "positive",
    "false": "negative",
}
# What a label cell holds when it holds nothing: CSV blanks, and what str() makes of NaN/None.
_MISSING_LABELS = {"", "nan", "none", "null"}
# csv's default cap is 131,072 characters per field; a long review must not stop a whole file.
_CSV_FIELD_LIMIT = 2**31 - 1


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

    def __post_init__(self) -> None:
        """A misspelt scheme in a config or option fails here, by name, not as a KeyError while loading."""
        if self.source_scheme is not None:
            parse_scheme(self.source_scheme)

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
    """Texts with label indices into ``label_names``; ``sources`` records where rows came from.

    ``polarity_only`` flags the rows whose label only says negative or positive, not that the
    review is not neutral: a binary file trained into three classes with ``binary_files: pair``
    (empty: no row is flagged).
    """

    texts: list[str]
    labels: list[int]
    label_names: tuple[str, ...]
    sources: list[dict[str, Any]] = field(default_factory=list)
    polarity_only: list[bool] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)

    def flags(self) -> list[bool]:
        """``polarity_only`` with one entry per row."""
        return self.polarity_only or [False] * len(self.texts)

    def subset(self, indices: Sequence[int]) -> LabeledData:
        """The rows at ``indices``, flags kept; ``sources`` is left to the caller."""
        flags = self.polarity_only
        return LabeledData(
            [self.texts[i] for i in indices],
            [self.labels[i] for i in indices],
            self.label_names,
            polarity_only=[flags[i] for i in indices] if flags else [],
        )

    def balance(self) -> dict[str, int]:
        return class_balance(self.labels, self.label_names)


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a CSV, JSON-lines or Parquet file; ``hf:NAME[:SPLIT]`` reads a hub dataset (online only)."""
    spec = str(path)
    if spec.startswith("hf:"):
        return _read_hub(spec[3:])
    file = Path(spec)
    if not file.is_file():
        raise DataError(f"{file}: {'a directory, not a file' if file.is_dir() else 'no such file'}")
    suffix = file.suffix.lower()
    try:
        if suffix in {".csv", ".tsv"}:
            return _read_csv(file, "\t" if suffix == ".tsv" else ",")
        if suffix in {".jsonl", ".ndjson", ".json"}:
            return _read_json_lines(file)
    except UnicodeDecodeError as exc:  # was the bare codec message, naming no file
        raise DataError(f"{not_utf8(file, exc)}; save it as UTF-8") from None
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        rows: list[dict[str, Any]] = pq.read_table(file).to_pylist()
        return rows
    raise DataError(f"{file}: unsupported format {suffix!r} (csv, tsv, jsonl, parquet)")


def _read_csv(file: Path, delimiter: str) -> list[dict[str, Any]]:
    """``utf-8-sig`` because spreadsheet exports start with a BOM that would otherwise rename the first column.

    The field-size cap is process-wide, so it is raised only while this file is read. Rows are
    numbered as ``to_labeled`` numbers them: data rows from 1.
    """
    previous = csv.field_size_limit(_CSV_FIELD_LIMIT)
    try:
        with file.open(newline="", encoding="utf-8-sig") as handle:
            rows: list[dict[str, Any]] = []
            if delimiter == "\t":  # one record per line: an unclosed quote cannot swallow the rows after it
                rows.extend(row for _line, row in tsv_records(handle))
                return rows
            for _line, row in csv_records(handle, delimiter):
                if isinstance(row, str):  # a record strict reading refused over several lines
                    if row.startswith("unreadable CSV: "):  # one line even lenient reading cannot read
                        raise DataError(f"{file}: row {len(rows) + 1}: {row.removeprefix('unreadable CSV: ')}")
                    log.warning("%s: skipped %s", file, row)
                    continue
                rows.append(row)
            for number, row in enumerate(rows, start=1):
                if any(str(value).strip() for value in cast(dict[Any, Any], row).get(None) or []):
                    raise DataError(
                        f"{file}: row {number}: more fields than the header names (an unquoted delimiter in a text?)"
                    )
            return rows
    finally:
        csv.field_size_limit(previous)


def _read_json_lines(file: Path) -> list[dict[str, Any]]:
    """One JSON object per line; a bad line is named, so a large file can be fixed where it broke."""
    rows: list[dict[str, Any]] = []
    with file.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{file}: line {number}: not JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise DataError(f"{file}: line {number}: expected a JSON object, got {type(row).__name__}")
            rows.append(row)
    return rows


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


def parse_scheme(value: str) -> LabelScheme:
    """A scheme name from a user (CLI option, config) as a ``LabelScheme``, or a DataError listing the choices."""
    if value not in SCHEMES:
        raise DataError(f"unknown label scheme {value!r} (choose from {', '.join(SCHEMES)})")
    return cast(LabelScheme, value)


def stars_to_label(stars: int, scheme: LabelScheme) -> str | None:
    """1-2 stars negative, 3 neutral (dropped for binary), 4-5 positive."""
    if not 1 <= stars <= 5:
        raise DataError(f"stars must be 1-5, got {stars}")
    if stars <= 2:
        return "negative"
    if stars == 3:
        return "neutral" if scheme == "stars3" else None
    return "positive"


def parse_stars(value: Any) -> int | None:
    """A star rating as an int; None outside 1-5, so one 0 or 10 is a skipped row rather than a failed file."""
    try:
        number = float(str(value).strip())
    except ValueError as exc:
        raise DataError(f"stars must be a number, got {value!r}") from exc
    if not 1 <= number <= 5:
        return None
    return math.floor(number + 0.5)  # half up: 2.5 stars is neutral and 3.9 positive (int() cut them down)


def is_missing(value: Any) -> bool:
    """None, NaN and blank cells: how CSV, pandas-written JSON lines and Parquet say "no value".

    pandas writes a label column that has any NaN as floats (0.0, 1.0, NaN), so NaN must read as
    a gap, not as a label.
    """
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and value.strip().lower() in _MISSING_LABELS


def normalize_label(value: Any) -> str | None:
    """A raw label as one comparable token: None when missing; 1, 1.0 and "1.0" all "1"; names canonical.

    Booleans are names (True positive), not indices, so they never depend on the scheme.
    """
    if is_missing(value):
        return None
    if isinstance(value, bool):
        return "positive" if value else "negative"
    raw = str(value).strip().lower()
    if raw in _LABEL_ALIASES:
        return _LABEL_ALIASES[raw]
    try:
        number = float(raw)
    except ValueError:
        return raw
    return str(int(number)) if number.is_integer() else raw


def present_labels(values: Iterable[Any]) -> set[str]:
    """The distinct normalised labels among ``values``, missing ones left out."""
    return {label for label in map(normalize_label, values) if label is not None}


def infer_scheme(values: Iterable[Any]) -> LabelScheme:
    """Integer labels 0/1 are binary, 0/1/2 three-class; label names decide by themselves.

    Only present labels count: a blank or NaN cell says nothing about the scheme. 0/1 alone is
    also what a three-class file without neutral rows looks like; callers that can tell the user
    should (``reviewscore eval`` warns), and ``DataSource.source_scheme`` settles it.
    """
    seen = present_labels(values)
    if not seen:
        raise DataError("cannot infer the label scheme: no labels")
    if seen <= {"0", "1"}:
        return "binary"
    if seen <= {"0", "1", "2"}:
        return "stars3"
    if seen <= set(LABELS_3):
        return "stars3" if "neutral" in seen else "binary"
    raise DataError(f"cannot infer the label scheme from values {sorted(seen)[:10]}")


def refuse_one_based_polarity(labels: set[str], where: str) -> None:
    """Labels 1 and 2 alone are 1-based polarity (Amazon, Yelp) far more often than a three-class
    file without a negative row: read as neutral/positive, every negative trained as neutral."""
    if labels == {"1", "2"}:
        raise DataError(
            f"{where}: labels 1 and 2 only: map them to 0/1 if they mean negative/positive, or set "
            "source_scheme: stars3 for this file if 1 means neutral"
        )


def label_name(value: Any, source_scheme: LabelScheme) -> str:
    """A raw label value (index in the source scheme, or a name) as a canonical label name."""
    label = normalize_label(value)
    if label is None:
        raise DataError("missing label")
    if label in LABELS_3:
        return label
    try:
        index = int(label)
    except ValueError as exc:
        raise DataError(f"unknown label {value!r}") from exc
    names = SCHEMES[source_scheme]
    if not 0 <= index < len(names):
        raise DataError(f"label {index} out of range for scheme {source_scheme} {names}")
    return names[index]


def map_label(name: str, target: Sequence[str]) -> int | None:
    """Index of ``name`` in the target labels; None when the target cannot express it (neutral -> binary)."""
    return target.index(name) if name in target else None


def check_columns(rows: Sequence[dict[str, Any]], source: DataSource) -> str:
    """The label (or stars) column to read, once the file is known to have it and the text column."""
    if not rows:
        raise DataError(f"{source.path}: no rows")
    columns = set(rows[0])
    if source.text_column not in columns:
        raise DataError(f"{source.path}: no text column {source.text_column!r} (columns: {sorted(columns)})")
    label_column = source.stars_column if source.stars_column is not None else source.label_column
    if label_column is None or label_column not in columns:
        raise DataError(f"{source.path}: no label column {label_column!r} (columns: {sorted(columns)})")
    return label_column


def _cells(rows: Sequence[dict[str, Any]], source: DataSource, label_column: str) -> list[tuple[Any, Any]]:
    """(text, label) of every row; a JSON-lines row without one of the keys is named rather than a bare KeyError."""
    cells = []
    for number, row in enumerate(rows, start=1):
        for column in (source.text_column, label_column):
            if column not in row:
                raise DataError(f"{source.path}: row {number} has no {column!r} (columns: {sorted(row)})")
        cells.append((row[source.text_column], row[label_column]))
    return cells


def _text_of(value: Any) -> str:
    """A text cell as text; None and NaN (pandas' missing text) are empty, not the review "nan"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def to_labeled(rows: Sequence[dict[str, Any]], source: DataSource, scheme: LabelScheme, seed: int = 42) -> LabeledData:
    """Map rows onto ``scheme``: clean, drop empties and unmappable labels, dedupe, optionally subsample.

    Rows without text, without a label, with stars outside 1-5, with a class the scheme cannot
    express, or repeating a text are skipped and counted in ``sources[0]["skipped"]``; a label
    that is present but unreadable is an error naming its row.
    """
    target = SCHEMES[scheme]
    label_column = check_columns(rows, source)
    use_stars = source.stars_column is not None
    cells = _cells(rows, source, label_column)
    source_scheme = source.source_scheme
    if source_scheme is None and not use_stars:
        source_scheme = infer_scheme(raw for _, raw in cells)
        refuse_one_based_polarity(present_labels(raw for _, raw in cells), source.display_name)
        if scheme == "stars3" and present_labels(raw for _, raw in cells) <= {"0", "1"}:
            log.warning(
                "%s: labels 0/1 read as negative/positive; if 1 means neutral, set source_scheme: stars3 "
                "for this file (source_scheme: binary says the reading is right)",
                source.display_name,
            )
    texts: list[str] = []
    labels: list[int] = []
    seen: set[str] = set()
    skipped: Counter[str] = Counter()
    for number, (raw_text, raw) in enumerate(cells, start=1):
        text = clean_text(_text_of(raw_text))
        try:
            outcome = _row_outcome(text, raw, seen, use_stars, source_scheme, scheme)
        except DataError as exc:
            raise DataError(f"{source.path}: row {number}: {exc}") from exc
        if isinstance(outcome, str):
            skipped[outcome] += 1
            continue
        seen.add(text)
        texts.append(text)
        labels.append(outcome)
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
            "skipped": dict(sorted(skipped.items())),
            "balance": data.balance(),
        }
    ]
    return data


def _row_outcome(
    text: str, raw: Any, seen: set[str], use_stars: bool, source_scheme: LabelScheme | None, scheme: LabelScheme
) -> int | str:
    """The row's class index in ``scheme``, or why the row is skipped."""
    if not text:
        return "no text"
    if is_missing(raw):
        return "no label"
    if text in seen:
        return "duplicate"
    if use_stars:
        stars = parse_stars(raw)
        if stars is None:
            return "stars out of range"
        name = stars_to_label(stars, scheme)
    else:
        assert source_scheme is not None
        name = label_name(raw, source_scheme)
    index = None if name is None else map_label(name, SCHEMES[scheme])
    return f"not in {scheme}" if index is None else index


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
    flagged = any(p.polarity_only for p in parts)
    return LabeledData(
        [t for p in parts for t in p.texts],
        [y for p in parts for y in p.labels],
        names,
        [s for p in parts for s in p.sources],
        [f for p in parts for f in p.flags()] if flagged else [],
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
            # One member stays in the first part: [0.5, 0.45] of a class of two emptied it from training.
            count = max(0, min(round(len(members) * fraction), len(members) - start - 1))
            buckets[part].extend(members[start : start + count])
            start += count
        buckets[0].extend(members[start:])
    parts = []
    for indices in buckets:
        indices.sort()
        parts.append(data.subset(indices))
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
