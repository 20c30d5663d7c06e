"""Benchmark the model variants: batch-1 latency, batch 32/64 throughput, accuracy, size on disk.

    python bench/model.py --model /tmp/reviewscore-default --test ../shared/data/rt_polarity/test.csv

The fp32, bf16 and compiled rows need the artifact's fp32 weights: the shipped default (the
defaults of ``--model`` and ``--test``) keeps only int8, so on it only the int8 row runs; rebuild
the weights with its reproduce command (model/README.md) for the whole table. Prints a Markdown
table of one pass per measure (latency percentiles over ``--latency-n`` single calls), never asserted;
``--rounds N`` then re-times batch 32 of every row in N interleaved rounds and prints each row's
median ratio to fp32 fixed order, the figure to quote. "fixed order" is the
naive baseline: batches of N in input order, padded to the longest; every other row uses the
Scorer (length-sorted, token-budgeted sub-batches).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.config import ModelSettings
from model.artifact import read_card
from model.data import DataSource, infer_scheme, load_labeled, read_rows
from model.evaluate import evaluate_scorer
from model.scorer import BatchedScorer, cpu_has_fast_bf16, cuda_available, load_scorer

FP32_FIXED = "fp32 eager, fixed order"


def latency(predict: Callable[[list[str]], object], texts: Sequence[str]) -> tuple[float, float]:
    timings = []
    for text in texts:
        start = time.perf_counter()
        predict([text])
        timings.append((time.perf_counter() - start) * 1000)
    return statistics.median(timings), float(np.percentile(timings, 99))


def throughput(predict: Callable[[list[str]], object], texts: Sequence[str], batch: int) -> float:
    start = time.perf_counter()
    for i in range(0, len(texts), batch):
        predict(list(texts[i : i + batch]))
    return len(texts) / (time.perf_counter() - start)


def fixed_order(scorer: BatchedScorer) -> Callable[[list[str]], object]:
    """Naive batching: one forward pass over the whole batch as given, padded to its longest member."""

    def predict(texts: list[str]) -> object:
        return scorer.forward(scorer.encode(texts))

    return predict


def accuracy(scorer: BatchedScorer, test: Path, limit: int) -> str:
    rows = read_rows(test)
    scheme = infer_scheme(r["label"] for r in rows)
    data = load_labeled(DataSource(str(test)), scheme)
    data.texts, data.labels = data.texts[:limit], data.labels[:limit]
    return f"{100 * evaluate_scorer(scorer, data)['accuracy']:.1f}%"


def size_mb(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.1f}" if path.is_file() else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model", type=Path, default=Path("model/artifacts/default"), help="Artifact (fp32 weights for most rows)."
    )
    parser.add_argument(
        "--test",
        type=Path,
        default=Path("../shared/data/rt_polarity/test.csv"),
        help="Labeled test file for accuracy and texts.",
    )
    parser.add_argument("--latency-n", type=int, default=100, help="Reviews timed one by one.")
    parser.add_argument("--throughput-n", type=int, default=512, help="Reviews per throughput run.")
    parser.add_argument("--accuracy-n", type=int, default=1067, help="Rows of the test file scored for accuracy.")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", "2")))
    parser.add_argument("--compile", action="store_true", help="Also time torch.compile (slow to warm up).")
    parser.add_argument("--charcnn", action="store_true", help="Also time an (untrained) paper-size char-CNN.")
    parser.add_argument(
        "--bf16",
        action="store_true",
        help="Also time bf16 autocast on a CPU not detected as fast at it (checks the detection).",
    )
    parser.add_argument(
        "--int8-batched", action="store_true", help="Also time int8 in padded batches (the pre-2026-12-02 Scorer)."
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="N >= 2: then time batch 32 of every row in N interleaved rounds (order alternating) and print each "
        "row's median ratio to fp32 fixed order over the rounds (one pass each is within the machine's noise).",
    )
    options = parser.parse_args()

    import torch

    torch.set_num_threads(options.threads)
    card = read_card(options.model)
    texts = [str(r["text"]) for r in read_rows(options.test)]
    sample = (texts * (1 + options.throughput_n // max(len(texts), 1)))[: options.throughput_n]
    rows: list[tuple[str, ...]] = []
    batch32: list[float] = []  # each row's batch-32 reviews/s, unrounded
    timed: list[tuple[str, Callable[[list[str]], object]]] = []  # every row's batch predict, for --rounds

    def settings(variant: str, device: str = "cpu") -> ModelSettings:
        return ModelSettings.model_validate(
            {"variant": variant, "device": device, "num_threads": options.threads, "max_length": card.max_length}
        )

    def measure(name: str, scorer: BatchedScorer, size: str, predict: Callable[[list[str]], object] | None = None):
        run = predict or scorer.predict
        # Warm-up at every shape timed below: a compiled model recompiles for batch 1, and that
        # one call (seconds) was the p99 of the latency pass.
        for batch in (1, 8, 32, 64):
            run(sample[:batch])
        p50, p99 = latency(run, texts[: options.latency_n])
        per_second_32 = throughput(run, sample, 32)
        batch32.append(per_second_32)
        row = (
            name,
            f"{p50:.1f}",
            f"{p99:.1f}",
            f"{per_second_32:.0f}",
            f"{throughput(run, sample, 64):.0f}",
            accuracy(scorer, options.test, options.accuracy_n),
            size,
        )
        rows.append(row)
        timed.append((name, run))
        print(" | ".join(row), file=sys.stderr, flush=True)

    weights = options.model / "model.safetensors"
    if weights.is_file():
        fp32 = load_scorer(options.model, settings("fp32"))
        measure(FP32_FIXED, fp32, size_mb(weights), fixed_order(fp32))
        measure("fp32 eager, Scorer batching", fp32, size_mb(weights))
        if cpu_has_fast_bf16():
            measure("bf16 autocast (AVX-512-BF16/AMX)", load_scorer(options.model, settings("bf16")), size_mb(weights))
        elif options.bf16:
            measure(
                "bf16 autocast (not detected: never auto here)",
                load_scorer(options.model, settings("bf16")),
                size_mb(weights),
            )
        if options.compile:
            compiled = load_scorer(options.model, settings("fp32"))
            compiled.model = torch.compile(compiled.model, dynamic=True)  # type: ignore[attr-defined]
            measure("fp32 torch.compile", compiled, size_mb(weights))
    else:
        print(
            f"{options.model} holds no fp32 weights ({weights.name}): fp32, bf16, compiled and CUDA rows skipped; "
            "rebuild them with the reproduce command in model/README.md",
            file=sys.stderr,
        )
    if "onnx-int8" in card.variants:
        int8 = options.model / card.variants["onnx-int8"]
        shipped = load_scorer(options.model, settings("onnx-int8"))
        measure("ONNX Runtime int8, Scorer (one review per pass)", shipped, size_mb(int8))
        if options.int8_batched:
            from model.onnx_runtime import OnnxScorer

            limits = {"max_length": shipped.max_length, "max_batch_tokens": shipped.max_batch_tokens}
            batched = OnnxScorer(options.model, card, int8, options.threads, row_wise=False, **limits)
            measure("ONNX Runtime int8, padded batches (neighbour-dependent)", batched, size_mb(int8))
    if options.charcnn:
        from model.charcnn import CharCNN, CharCNNConfig, CharCNNScorer, save_charcnn

        with tempfile.TemporaryDirectory() as tmp:
            cnn = CharCNN(CharCNNConfig(num_labels=len(card.labels)))
            save_charcnn(cnn, Path(tmp))
            cnn_card = type(card)(architecture="charcnn", labels=card.labels, max_length=1014)
            measure("char-CNN (untrained; speed only)", CharCNNScorer(cnn, cnn_card), size_mb(Path(tmp) / weights.name))
    if cuda_available() and weights.is_file():
        for variant in ("bf16", "cuda-int8", "cuda-fp8"):
            try:
                measure(f"CUDA {variant}", load_scorer(options.model, settings(variant, "cuda")), size_mb(weights))
            except Exception as exc:  # noqa: BLE001 - report and go on to the next variant
                print(f"CUDA {variant}: skipped ({type(exc).__name__}: {exc})", file=sys.stderr)

    print(f"\nmodel {card.version}, test {options.test.name}, threads {options.threads}, torch {torch.__version__}")
    # The yardstick: each variant's batch-32 throughput over fp32 eager with fixed-order batches.
    reference = batch32[0] if rows and rows[0][0] == FP32_FIXED else None  # unrounded, as every ratio
    print(
        "| variant | batch-1 p50 ms | batch-1 p99 ms | batch 32 reviews/s | × fp32 fixed | batch 64 reviews/s "
        "| accuracy | MB |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row, per_second_32 in zip(rows, batch32, strict=True):
        ratio = f"{per_second_32 / reference:.1f}×" if reference else "-"
        print("| " + " | ".join([*row[:4], ratio, *row[4:]]) + " |")
    if options.rounds > 1 and timed and timed[0][0] == FP32_FIXED:
        interleaved(timed, sample, options.rounds)


def interleaved(timed: list[tuple[str, Callable[[list[str]], object]]], sample: list[str], rounds: int) -> None:
    """Batch-32 throughput of every row, round by round, each round's ratio to fp32 fixed order.

    A slow spell of the machine hits a whole round, not one row; the order alternates so no row
    always runs first; the median per-round ratio is the figure to quote.
    """
    rates: dict[str, list[float]] = {name: [] for name, _ in timed}
    for r in range(rounds):
        for name, run in timed if r % 2 == 0 else reversed(timed):
            rates[name].append(throughput(run, sample, 32))
    base = rates[FP32_FIXED]
    print(f"\nbatch 32, {rounds} interleaved rounds")
    print("| variant | reviews/s (median) | × fp32 fixed (median of rounds) | per round |")
    print("|---|---|---|---|")
    for name, values in rates.items():
        ratios = [v / b for v, b in zip(values, base, strict=True)]
        spread = " / ".join(f"{x:.2f}" for x in ratios)
        print(f"| {name} | {statistics.median(values):.0f} | {statistics.median(ratios):.2f}× | {spread} |")


if __name__ == "__main__":
    main()
