"""The CPU int8 path: export the transformer to ONNX and quantize it dynamically with ONNX Runtime.

Chosen on measurement: ONNX Runtime dynamic int8 lost 0.2 pt of accuracy and ran about 2 ms per
short review at batch 1, while ``torch.ao.quantization.quantize_dynamic`` (deprecated in torch
2.13) lost 0.75 pt and was slower. The int8 file is also what the default artifact ships (34 MB:
the feed-forward output projections stay fp32, see ``FFN_OUTPUT_PATTERNS``).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from model.artifact import ArtifactError, ModelCard
from model.scorer import BatchedScorer
from model.tokenization import FastTokenizer, encode, pad_batch

log = logging.getLogger(__name__)


def export_onnx(directory: Path, path: Path, opset: int = 17) -> Path:
    """Export the fp32 classifier in ``directory`` to ``path`` with dynamic batch and sequence axes."""
    import torch

    from model.transformer import load_classifier

    class LogitsOnly(torch.nn.Module):
        """The exporter traces tensors, not Hugging Face output objects: hand it the logits alone."""

        def __init__(self, classifier: Any) -> None:
            super().__init__()
            self.classifier = classifier

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            logits: torch.Tensor = self.classifier(input_ids=input_ids, attention_mask=attention_mask).logits
            return logits

    model = LogitsOnly(load_classifier(directory, attn_implementation="eager")).eval()
    sample = (torch.ones(2, 8, dtype=torch.long), torch.ones(2, 8, dtype=torch.long))
    axes = {0: "batch", 1: "sequence"}
    with warnings.catch_warnings(), torch.inference_mode():
        # The TorchScript exporter (dynamo=False) is the one that needs no onnxscript; it warns
        # about its own deprecation and about tracing Python control flow, both expected here.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            sample,
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "logits": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
    return path


# Feed-forward output projections (BERT ``…/output/dense``, DistilBERT ``…/ffn/lin2``): their
# inputs come out of GELU with outliers that per-batch int8 activations clip. Keeping these six
# MatMuls in fp32 cut the accuracy loss of the default model from 1.1-1.5 pt to 0.1-0.3 pt on its
# validation and trustpilot sets, for 20% of the int8 speed and +10 MB (model/README.md).
FFN_OUTPUT_PATTERNS = (r"/layer\.\d+/output/dense/MatMul$", r"/ffn/lin2/MatMul$")


def fp32_nodes(source: Path, patterns: Sequence[str] = FFN_OUTPUT_PATTERNS) -> list[str]:
    """Names of the MatMul nodes in ``source`` that the int8 file keeps in fp32."""
    import re

    import onnx

    graph = onnx.load(str(source), load_external_data=False).graph
    compiled = [re.compile(p) for p in patterns]
    return [n.name for n in graph.node if n.op_type == "MatMul" and any(c.search(n.name) for c in compiled)]


def quantize_int8(source: Path, target: Path, keep_fp32: Sequence[str] = FFN_OUTPUT_PATTERNS) -> Path:
    """Dynamic quantization (int8 weights; activations quantized per batch at run time) of an ONNX
    file, except the MatMuls whose names match ``keep_fp32`` (regular expressions)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    excluded = fp32_nodes(source, keep_fp32) if keep_fp32 else []
    logging.disable(logging.INFO)  # it logs one INFO line per tensor through the root logger
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, nodes_to_exclude=excluded)
    finally:
        logging.disable(logging.NOTSET)
    return target


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity mask where the OS has one (Linux; a
    container's cpuset), else every CPU (macOS and Windows have no ``sched_getaffinity``)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def make_session(path: Path, threads: int | None, spin: bool = False) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.log_severity_level = 3
    if not spin:
        # A worker shares its cores with the broker client, the event loop and often the database:
        # ORT's busy-waiting intra-op threads take their CPU between model calls. bench/stream.py,
        # back to back: end to end 57 -> 62 reviews/s without spinning, model alone 77 -> 71; a later
        # full run gave 57 end to end, so the gain is within this machine's run-to-run noise.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if not path.is_file():
        raise ArtifactError(f"{path.parent}: the card lists {path.name}, but the file is missing")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own errors (InvalidProtobuf, NoSuchFile …) share no base class
        raise ArtifactError(f"{path}: ONNX Runtime cannot load it ({type(exc).__name__}: {exc})"[:500]) from exc


class OnnxScorer(BatchedScorer):
    """ONNX Runtime on CPU; the tokenizer comes from the artifact directory.

    The int8 file runs **one review per pass**, the passes spread over ``threads`` single-threaded
    runs at once. Dynamic quantization picks one activation scale per tensor, so in a padded
    batch a review's scores depend on its neighbours and its padding: batched, the shipped model
    flipped 9 of 600 womens_clothing labels against the same reviews scored alone, and moved
    scores by up to 0.25. One review per pass makes a score a function of its text, so a
    re-delivery, a rescore or the API's answer agree with the stored row; it also needs no
    padding, which is why it costs little throughput on CPU (model/README.md, benchmark).
    """

    device = "cpu"

    def __init__(
        self,
        directory: Path,
        card: ModelCard,
        onnx_path: Path,
        threads: int | None = None,
        *,
        spin: bool = False,
        max_length: int = 256,
        max_batch_size: int = 64,
        max_batch_tokens: int = 8192,
        row_wise: bool | None = None,
    ) -> None:
        """``row_wise``: one review per pass (default: for the int8 file; the benchmark compares)."""
        super().__init__(card, max_length, max_batch_size, max_batch_tokens)
        self.variant = "onnx-int8" if "int8" in onnx_path.name else "onnx-fp32"
        self.tokenizer = FastTokenizer(directory)
        self.pad_id = int(self.tokenizer.pad_token_id or 0)
        self.row_wise = self.variant == "onnx-int8" if row_wise is None else row_wise
        self._pool: ThreadPoolExecutor | None = None
        if self.row_wise:
            parallel = threads or usable_cpus()
            self.session = make_session(onnx_path, 1, spin)
            self._pool = ThreadPoolExecutor(parallel, thread_name_prefix="onnx-row") if parallel > 1 else None
        else:
            self.session = make_session(onnx_path, threads, spin)
        self._inputs = {i.name for i in self.session.get_inputs()}

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return encode(self.tokenizer, texts, self.max_length)

    def forward(self, batch: list[list[int]]) -> npt.NDArray[np.float32]:
        if self.row_wise and len(batch) > 1:
            rows = (
                self._pool.map(self._run, ([ids] for ids in batch))
                if self._pool
                else map(self._run, ([ids] for ids in batch))
            )
            return np.concatenate(list(rows))
        return self._run(batch)

    def _run(self, batch: list[list[int]]) -> npt.NDArray[np.float32]:
        input_ids, mask = pad_batch(batch, self.pad_id)
        feeds = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        result: npt.NDArray[np.float32] = self.session.run(["logits"], feeds)[0].astype(np.float32)
        return result
