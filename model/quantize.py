"""``reviewscore quantize``: add an int8 variant to an artifact, optionally as a new, slimmer artifact.

The CPU int8 variant is an ONNX Runtime dynamically quantized file next to the weights; the
card lists it, records its measured accuracy against fp32 when a check file is given, and the
version is recomputed because the directory's contents changed.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from model.artifact import FP32_FILE, ONNX_INT8_FILE, ArtifactError, ModelCard, read_card, write_card
from model.data import DataSource, load_labeled

# Files of an HF transformer directory that the ONNX scorer does not need.
_TORCH_ONLY = {FP32_FILE, "generation_config.json"}


def quantize_artifact(
    directory: Path,
    output: Path | None = None,
    *,
    drop_fp32: bool = False,
    check: DataSource | None = None,
) -> ModelCard:
    """Export + quantize ``directory``'s transformer into ``output`` (default: in place).

    An artifact that already has its int8 file keeps it (the calibrated one), so this also serves
    to check it against fp32 and to make a slim copy for shipping.
    """
    from model.onnx_runtime import export_onnx, quantize_int8

    directory = Path(directory)
    card = read_card(directory)
    if card.architecture != "transformer":
        raise ArtifactError("int8 quantization applies to transformer artifacts; the char-CNN is already small")
    if "fp32" not in card.variants:
        raise ArtifactError(f"{directory}: no fp32 weights to quantize (variants {sorted(card.variants)})")
    target = Path(output) if output else directory
    if target != directory:
        if target.exists() and any(target.iterdir()):
            raise ArtifactError(f"{target}: exists and is not empty")
        shutil.copytree(directory, target, dirs_exist_ok=True)
    if not (card.variants.get("onnx-int8") and (target / card.variants["onnx-int8"]).is_file()):
        with tempfile.TemporaryDirectory() as tmp:
            fp32_onnx = export_onnx(directory, Path(tmp) / "model.onnx")
            quantize_int8(fp32_onnx, target / ONNX_INT8_FILE)
    card.variants = {**card.variants, "onnx-int8": ONNX_INT8_FILE}
    if check is not None:
        card.metrics = {**card.metrics, "quantization_check": compare_variants(target, card, check)}
    if drop_fp32:
        for name in _TORCH_ONLY:
            (target / name).unlink(missing_ok=True)
        card.variants = {k: v for k, v in card.variants.items() if k != "fp32"}
        card.notes = (
            card.notes + " fp32 weights dropped to fit in git; rebuild them with the reproduce command."
        ).strip()
    return write_card(target, card)


def compare_variants(directory: Path, card: ModelCard, check: DataSource) -> dict[str, Any]:
    """Accuracy of fp32 and int8 on one labeled file, and how often their labels agree."""
    from core.config import ModelSettings
    from model.evaluate import evaluate_scorer
    from model.scorer import load_scorer

    write_card(directory, card)
    data = load_labeled(check, "binary" if _is_binary(check) else "stars3")
    result: dict[str, Any] = {"file": check.display_name, "n": len(data)}
    labels = {}
    for variant in ("fp32", "onnx-int8"):
        scorer = load_scorer(directory, ModelSettings(variant=variant, device="cpu"))
        report = evaluate_scorer(scorer, data)
        result[variant] = {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"]}
        labels[variant] = [s.label for s in scorer.predict(data.texts)]
    same = sum(a == b for a, b in zip(labels["fp32"], labels["onnx-int8"], strict=True))
    result["label_agreement"] = round(same / max(len(data), 1), 4)
    result["accuracy_delta_pt"] = round(100 * (result["onnx-int8"]["accuracy"] - result["fp32"]["accuracy"]), 2)
    return result


def _is_binary(source: DataSource) -> bool:
    """A DataError naming the columns when the file has no label column (was a bare KeyError)."""
    from model.data import check_columns, infer_scheme, read_rows

    if source.stars_column:
        return False
    rows = read_rows(source.path)
    column = check_columns(rows, source)
    return infer_scheme(row.get(column) for row in rows) == "binary"
