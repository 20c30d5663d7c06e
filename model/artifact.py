"""The model artifact: a directory of weights, tokenizer and ``model_card.json`` that describes itself.

Like a nanoGPT checkpoint, the directory carries what is needed to load and judge it: the
architecture, labels, maximum length, calibration temperature, which numeric variants exist
(and their files), the data it was trained on (with file hashes), its metrics and the command
that reproduces it. ``version`` is a content hash, so new weights always mean a new version.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

CARD_FILE = "model_card.json"
Architecture = Literal["transformer", "charcnn"]
# Variant name -> file (relative to the artifact directory) holding its weights.
FP32_FILE = "model.safetensors"
ONNX_FP32_FILE = "model.onnx"
ONNX_INT8_FILE = "model.int8.onnx"


class ArtifactError(ValueError):
    """A directory that is not a usable model artifact."""


@dataclass(slots=True)
class ModelCard:
    architecture: Architecture
    labels: list[str]
    max_length: int
    name: str = "reviewscore-sentiment"
    version: str = ""
    base_model: str = ""
    label_scheme: str = "stars3"
    temperature: float = 1.0
    variants: dict[str, str] = field(default_factory=dict)
    data_sources: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    architecture_config: dict[str, Any] = field(default_factory=dict)
    reproduce: str = ""
    notes: str = ""
    created_at: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        known = {f.name for f in fields(cls)}
        missing = {"architecture", "labels", "max_length"} - set(data)
        if missing:
            raise ArtifactError(f"model card lacks {sorted(missing)}")
        if problems := _card_problems(data):
            raise ArtifactError(f"model card: {'; '.join(problems)}")
        return cls(**{k: v for k, v in data.items() if k in known})


def _card_problems(data: dict[str, Any]) -> list[str]:
    """What a hand-edited card got wrong in the fields that decide outputs: a ``"64"`` or a ``null``
    failed deep in a loader with a TypeError; a duplicated label scored under the wrong names."""
    problems = []
    if data["architecture"] not in get_args(Architecture):
        problems.append(f"architecture {data['architecture']!r} is not one of {', '.join(get_args(Architecture))}")
    labels = data["labels"]
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        problems.append(f"labels {labels!r} are not a list of names")
    elif len(set(labels)) != len(labels) or len(labels) < 2:
        problems.append(f"labels {labels} are not two or more different names")
    max_length, temperature = data["max_length"], data.get("temperature", 1.0)
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
        problems.append(f"max_length {max_length!r} is not a positive integer")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 < temperature < float("inf"):
        problems.append(f"temperature {temperature!r} is not a positive number")
    variants = data.get("variants", {})
    if not isinstance(variants, dict) or not all(isinstance(v, str) for v in variants.values()):
        problems.append(f"variants {variants!r} are not a mapping of variant names to file names")
    return problems


def read_card(directory: Path) -> ModelCard:
    path = Path(directory) / CARD_FILE
    if not path.is_file():
        raise ArtifactError(f"{directory}: not a model artifact (no {CARD_FILE})")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))  # an editor's BOM is no error
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path}: invalid JSON ({exc})") from exc
    try:
        return ModelCard.from_dict(data)
    except ArtifactError as exc:
        raise ArtifactError(f"{path}: {exc}") from exc


# What the loaders read: weights, configs and tokenizer files. Anything else in the directory (an
# eval report written next to the weights, notes, a copy of the data) changes no output, so it
# must not change the version, nor make ``load_scorer`` warn that the files no longer match it.
_WEIGHT_SUFFIXES = frozenset({".safetensors", ".onnx", ".data", ".bin", ".pt", ".model"})
_MODEL_FILES = frozenset(
    {
        "config.json",
        "charcnn_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "added_tokens.json",
        "vocab.json",
        "vocab.txt",
        "merges.txt",
    }
)


def _changes_outputs(file: Path) -> bool:
    return file.suffix in _WEIGHT_SUFFIXES or file.name in _MODEL_FILES


def content_hash(directory: Path, card: ModelCard) -> str:
    """SHA-256 over every weight/tokenizer file and the card fields that change outputs."""
    digest = hashlib.sha256()
    base = Path(directory)
    for file in sorted(p for p in base.rglob("*") if p.is_file() and _changes_outputs(p)):
        # Reports in the artifact's own eval/ and curves/ folders; the artifact's own folder may be
        # called so too (`train -o runs/eval`), and then its weights are what the version is about.
        if {"eval", "curves"} & set(file.relative_to(base).parts[:-1]):
            continue
        digest.update(file.relative_to(base).as_posix().encode())
        with file.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    meaning = {"labels": card.labels, "max_length": card.max_length, "temperature": card.temperature}
    digest.update(json.dumps(meaning, sort_keys=True).encode())
    return digest.hexdigest()


def weights_config(directory: Path, architecture: str) -> dict[str, Any] | None:
    """The saved weights' own configuration (``config.json``, the char-CNN's file for it), or None
    when the directory has none; ``ArtifactError`` when it is not a JSON object."""
    config_file = Path(directory) / ("charcnn_config.json" if architecture == "charcnn" else "config.json")
    if not config_file.is_file():
        return None
    try:
        config = json.loads(config_file.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{config_file}: invalid JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise ArtifactError(f"{config_file}: not a model configuration (a JSON {type(config).__name__})")
    return config


def weights_labels(config: dict[str, Any]) -> list[str] | None:
    """The label of each output of the weights, in order, when ``config`` names them (``id2label``
    other than the ``LABEL_0`` a config gets by default); None otherwise."""
    id2label = config.get("id2label") or {}
    try:
        labels = [str(id2label[key]) for key in sorted(id2label, key=int)]
    except (AttributeError, TypeError, ValueError):  # not a mapping, or keys that are not indices
        return None
    return None if not labels or all(label.startswith("LABEL_") for label in labels) else labels


def weights_label_count(config: dict[str, Any]) -> int | None:
    """How many labels weights of this ``config`` predict, or None when it does not say."""
    try:
        return int(config.get("num_labels") or len(config.get("id2label") or {})) or None
    except (TypeError, ValueError):
        return None


def version_of(directory: Path, card: ModelCard) -> str:
    """The version the directory's contents give: what ``write_card`` records."""
    return f"{card.name}-{card.architecture}-{content_hash(directory, card)[:12]}"


def write_card(directory: Path, card: ModelCard) -> ModelCard:
    """Recompute the version from the directory's contents and write the card next to the weights."""
    card.version = version_of(directory, card)
    card.created_at = card.created_at or datetime.now(UTC).isoformat(timespec="seconds")
    (Path(directory) / CARD_FILE).write_text(card.to_json(), encoding="utf-8")
    return card
