"""Scorer implementations share one batching shell; ``load_scorer`` picks device and variant.

``BatchedScorer.predict`` does the part every backend needs: encode once, plan length-sorted
sub-batches under a token budget and a count cap, run each padded to its own longest member,
apply the calibration temperature, and hand results back in input order. A backend only says
how to encode texts and how to turn a list of token-id lists into logits.
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from core.text import clean_text
from model.artifact import (
    FP32_FILE,
    ONNX_INT8_FILE,
    ArtifactError,
    ModelCard,
    read_card,
    version_of,
    weights_config,
    weights_label_count,
    weights_labels,
)
from model.base import LABELS_3, Score
from model.batching import plan_batches
from model.gpu import torchao_available
from model.scoring import scores_from_probs, softmax

if TYPE_CHECKING:
    from core.config import ModelSettings

log = logging.getLogger(__name__)
DEFAULT_ARTIFACT = Path(__file__).resolve().parent / "artifacts" / "default"


class BatchedScorer(ABC):
    """A ``model.base.Scorer`` given ``encode`` and ``forward``."""

    variant: str = "fp32"
    device: str = "cpu"

    def __init__(self, card: ModelCard, max_length: int, max_batch_size: int, max_batch_tokens: int) -> None:
        self.card = card
        self.labels = tuple(card.labels)
        self.max_length = min(max_length, card.max_length)
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens

    @property
    def model_version(self) -> str:
        return self.card.version

    @staticmethod
    def load(path: Path | None = None, settings: ModelSettings | None = None) -> BatchedScorer:
        """``BatchedScorer.load(path)``: the right implementation for the artifact (see ``load_scorer``)."""
        return load_scorer(path, settings)

    @abstractmethod
    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token (or character) ids of each text, truncated to ``max_length``, unpadded."""

    @abstractmethod
    def forward(self, batch: list[list[int]]) -> npt.NDArray[np.float32]:
        """Logits of shape (len(batch), num_labels) for one sub-batch, padded by the backend."""

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self.encode(model_inputs(texts))]

    def logits(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Uncalibrated logits in input order (evaluation fits the temperature on these)."""
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        if len(texts) == 0:
            return out
        ids = self.encode(model_inputs(texts))
        for batch in plan_batches([len(x) for x in ids], self.max_batch_tokens, self.max_batch_size):
            out[batch] = self.forward([ids[i] for i in batch])
        return out

    def probabilities(self, texts: Sequence[str]) -> npt.NDArray[np.float64]:
        return softmax(self.logits(texts), self.card.temperature)

    def predict(self, texts: Sequence[str]) -> list[Score]:
        if isinstance(texts, str):  # a str is a Sequence[str] too: each character would be scored
            raise TypeError("predict takes a list of texts; wrap one text in a list: predict([text])")
        if len(texts) == 0:  # also for a NumPy array or a pandas Series of texts
            return []
        for index, text in enumerate(texts):  # None or NaN scored confidently as the words "None", "nan"
            if not isinstance(text, str):
                raise TypeError(f"predict takes texts (str); item {index} is {type(text).__name__} {text!r}")
        return scores_from_probs(self.probabilities(texts), self.labels, self.model_version)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model_version}, variant={self.variant}, device={self.device})"


def model_inputs(texts: Sequence[str]) -> list[str]:
    """The texts as training saw them (``core.text.clean_text``: HTML unescaped, control and
    zero-width characters dropped): producers other than the crawler send them raw, and
    ``&#39;`` or ``&lt;3`` must not score differently from ``'`` and ``<3``."""
    return [clean_text(str(text)) for text in texts]


def cpu_has_fast_bf16() -> bool:
    """True when the CPU has AMX or AVX-512 BF16, the only CPUs where bf16 autocast beats fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("amx_bf16", "avx512_bf16"))


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def default_batch_tokens(device: str) -> int:
    """A CPU runs small length-sorted passes fastest (less padding, cache-sized activations:
    bench/model.py, int8 and bf16 alike); a GPU wants large ones to fill its cores."""
    return 16_384 if device == "cuda" else 1024


def resolve_variant(card: ModelCard, device: str, variant: str) -> tuple[str, str]:
    """(device, variant) to run, from the settings and what the artifact ships.

    auto: CUDA -> bf16 torch weights; CPU -> the ONNX int8 file when present, else bf16 autocast on
    CPUs with AMX/AVX-512-BF16, else fp32. An artifact with only the CPU int8 file (the shipped
    default: its fp32 weights are not in git) runs on CPU even where a GPU is asked for, with a
    warning, so a GPU image started on the default model scores instead of crash-looping; the
    worker's ``reviewscore_model_info{device,variant}`` shows it. Asking for a variant the
    artifact lacks is an error that says which ones it has.
    """
    have = set(card.variants)
    torch_weights = "fp32" in have
    if device == "auto":
        device = "cuda" if torch_weights and cuda_available() else "cpu"
    elif device == "cuda" and torch_weights and variant not in {"int8", "onnx-int8"} and not cuda_available():
        # Said here, not as torch's "Torch not compiled with CUDA enabled" from deep in loading.
        raise ArtifactError("MODEL_DEVICE=cuda, but torch sees no CUDA device here; use MODEL_DEVICE=auto or cpu")
    if variant == "auto":
        if device == "cuda" and torch_weights:
            return device, "bf16"
        if device == "cuda":
            log.warning(
                "MODEL_DEVICE=cuda, but the artifact has no torch weights (%s): scoring on CPU; "
                "point MODEL_PATH at an artifact with %s to use the GPU",
                sorted(have),
                FP32_FILE,
            )
        if "onnx-int8" in have:
            return "cpu", "onnx-int8"
        if torch_weights and card.architecture == "transformer" and cpu_has_fast_bf16():
            return "cpu", "bf16"
        if torch_weights:
            return "cpu", "fp32"
        raise ArtifactError(f"artifact has no runnable variant (has {sorted(have)})")
    if variant == "int8":
        variant = "onnx-int8"
    if variant == "onnx-int8":
        if "onnx-int8" not in have:
            raise ArtifactError(f"artifact has no onnx-int8 variant (has {sorted(have)}); run `reviewscore quantize`")
        return "cpu", variant
    if variant in {"fp32", "bf16", "cuda-int8", "cuda-fp8"} and not torch_weights:
        raise ArtifactError(f"variant {variant} needs the fp32 weights ({FP32_FILE}); artifact has {sorted(have)}")
    if variant in {"cuda-int8", "cuda-fp8"} and device != "cuda":
        raise ArtifactError(f"variant {variant} needs a CUDA device")
    if variant in {"cuda-int8", "cuda-fp8"} and not torchao_available():
        raise ArtifactError(f"variant {variant} needs torchao: pip install 'reviewscore[gpu]'")
    return device, variant


def _refuse_label_mismatch(directory: Path, card: ModelCard) -> None:
    """A card whose labels the weights do not have scored nothing sensible, or failed deep in torch;
    one with a label outside the schemes' (a `mixed`) gave scores no store can take: the table's
    CHECK refused its rows one by one, a third of a stream dead-lettered, a rescore half done."""
    if not set(card.labels) <= set(LABELS_3) or "positive" not in card.labels:
        raise ArtifactError(
            f"{directory}: labels {card.labels}; a scorer's are {', '.join(LABELS_3)} (positive among them, "
            "which the score is the probability of): rename the card's labels or train with a known scheme"
        )
    config = weights_config(directory, card.architecture) or {}
    count = weights_label_count(config)
    if count is not None and count != len(card.labels):
        raise ArtifactError(
            f"{directory}: the card lists {len(card.labels)} labels {card.labels}, the weights have {count}"
        )
    named = weights_labels(config) if card.architecture == "transformer" else None
    if named is not None and named != card.labels:  # every score under another label's name
        raise ArtifactError(f"{directory}: the card lists labels {card.labels}, config.json's id2label {named}")


# Files a tokenizer loads from; without any, ``AutoTokenizer`` built one that knows only its special
# tokens: every word [UNK], every review the same confident score, and nothing said.
_TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "spm.model",
    "tokenizer.model",
    "sentencepiece.bpe.model",
)


def _refuse_missing_tokenizer(directory: Path, card: ModelCard, variant: str) -> None:
    if card.architecture == "charcnn":
        return
    needed = ("tokenizer.json",) if variant == "onnx-int8" else _TOKENIZER_FILES
    if not any((directory / name).is_file() for name in needed):
        raise ArtifactError(
            f"{directory}: no tokenizer ({' or '.join(needed)}) for the {variant} variant: copy the "
            "tokenizer files saved with the model into the directory"
        )


def load_scorer(path: Path | None = None, settings: ModelSettings | None = None) -> BatchedScorer:
    """Load an artifact directory as a Scorer: ``path``, else ``settings.path``, else the shipped default."""
    from core.config import get_model_settings

    settings = settings or get_model_settings()
    directory = Path(path or settings.path or DEFAULT_ARTIFACT)
    card = read_card(directory)
    if (actual := version_of(directory, card)) != card.version:
        # Rows carry the card's version as the name of the weights that scored them; after a
        # hand edit (a temperature, a swapped file) it names other outputs. Loud, not fatal.
        log.warning(
            "%s: the card says version %s but the files give %s: they changed after the card was "
            "written, so rows will carry a version that does not name these weights "
            "(write it again with `reviewscore quantize`, or restore the files)",
            directory,
            card.version,
            actual,
        )
    _refuse_label_mismatch(directory, card)
    device, variant = resolve_variant(card, settings.device, settings.variant)
    _refuse_missing_tokenizer(directory, card, variant)
    if variant != "onnx-int8" and not (directory / FP32_FILE).is_file():
        raise ArtifactError(
            f"{directory}: the card lists {FP32_FILE} for the {variant} variant, but the file is missing"
        )
    threads = settings.num_threads or None
    limits: dict[str, Any] = {
        "max_length": settings.max_length,
        "max_batch_size": settings.max_batch_size,
        "max_batch_tokens": settings.max_batch_tokens or default_batch_tokens(device),
    }
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        scorer = _scorer_of(directory, card, device, variant, threads, settings.cpu_spin, limits)
    except (ArtifactError, ImportError):
        raise
    except Exception as exc:  # a truncated or hand-broken file: say which artifact, not a library's traceback
        problem = f"{type(exc).__name__}: {exc}"
        raise ArtifactError(f"{directory}: the {variant} model could not be loaded: {problem}") from exc
    log.info("loaded %r from %s", scorer, directory)
    return scorer


def _scorer_of(
    directory: Path, card: ModelCard, device: str, variant: str, threads: int | None, spin: bool, limits: dict[str, Any]
) -> BatchedScorer:
    scorer: BatchedScorer
    if variant == "onnx-int8":
        from model.onnx_runtime import OnnxScorer

        scorer = OnnxScorer(
            directory,
            card,
            directory / card.variants.get("onnx-int8", ONNX_INT8_FILE),
            threads,
            spin=spin,
            **limits,
        )
    elif card.architecture == "charcnn":
        from model.charcnn import CharCNNScorer

        scorer = CharCNNScorer.from_artifact(directory, card, device, variant, threads, **limits)
    else:
        from model.transformer import TransformerScorer

        scorer = TransformerScorer.from_artifact(directory, card, device, variant, threads, **limits)
    return scorer
