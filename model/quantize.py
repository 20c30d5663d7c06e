"""``reviewscore quantize``: add an int8 variant to an artifact, optionally as a new, slimmer artifact.

The CPU int8 variant is an ONNX Runtime dynamically quantized file next to the weights; the
card lists it, records its measured accuracy against fp32 when a check file is given, and the
version is recomputed because the directory's contents changed.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from model.artifact import FP32_FILE, ONNX_INT8_FILE, ArtifactError, ModelCard, read_card, write_card
from model.data import DataSource, LabeledData, load_labeled

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
    directory = Path(directory)
    card = read_card(directory)
    # Read before anything is written: a missing or unlabeled check file changes nothing.
    checked = (check, _read_check(check)) if check is not None else None
    if card.architecture != "transformer":
        raise ArtifactError("int8 quantization applies to transformer artifacts; the char-CNN is already small")
    if "fp32" not in card.variants:
        raise ArtifactError(f"{directory}: no fp32 weights to quantize (variants {sorted(card.variants)})")
    target = _new_artifact_dir(directory, Path(output)) if output else None
    if target is None:  # in place: the card lists the int8 file only once it is whole
        _add_int8(directory, directory, card, drop_fp32=drop_fp32, checked=checked)
        return write_card(directory, card)
    # The new artifact is built in a staging directory and moved into place at the end: a failed run
    # leaves nothing behind (nor the parents it created), so the same command can simply be run again.
    # An empty destination that exists (a mounted volume, a directory the user may write in but
    # not its parent) holds the staging directory itself and keeps its own inode.
    existed = target.exists()
    created = [] if existed else [p for p in (target, *target.parents) if not p.exists()]
    holder = target if existed else target.parent
    staging = holder / f".{target.name}.{uuid.uuid4().hex[:8]}.partial"
    moved: list[Path] = []
    try:
        shutil.copytree(directory, staging)
        _add_int8(directory, staging, card, drop_fp32=drop_fp32, checked=checked)
        write_card(staging, card)
        if existed:
            for entry in staging.iterdir():
                entry.rename(target / entry.name)
                moved.append(target / entry.name)
            staging.rmdir()
        else:
            staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for path in moved:  # an interrupted move: the destination goes back to empty
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        for path in created[1:]:  # the parents made for it, innermost first, if still empty
            with contextlib.suppress(OSError):
                path.rmdir()
        raise
    return read_card(target)


def _new_artifact_dir(directory: Path, output: Path) -> Path | None:
    """``output`` resolved, or None when it names ``directory`` itself (quantize in place)."""
    source, target = directory.resolve(), output.resolve()
    if target == source:
        return None
    if target.is_relative_to(source):
        raise ArtifactError(f"{output}: inside the artifact {directory}; write the new artifact elsewhere")
    if target.is_dir():  # a staging directory a killed run left inside it is not content
        for stale in target.glob(f".{target.name}.*.partial"):
            shutil.rmtree(stale, ignore_errors=True)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ArtifactError(f"{output}: exists and is not an empty directory")
    return target


def _add_int8(
    directory: Path, target: Path, card: ModelCard, *, drop_fp32: bool, checked: tuple[DataSource, LabeledData] | None
) -> None:
    """Quantize into ``target`` (unless its int8 file is there), check it, optionally drop fp32; updates ``card``."""
    from safetensors import SafetensorError

    from model.onnx_runtime import export_onnx, quantize_int8

    if not (card.variants.get("onnx-int8") and (target / card.variants["onnx-int8"]).is_file()):
        with tempfile.TemporaryDirectory() as tmp:
            try:
                fp32_onnx = export_onnx(directory, Path(tmp) / "model.onnx")
            except (OSError, ValueError, RuntimeError, ImportError, SafetensorError) as exc:
                raise ArtifactError(f"{directory}: its fp32 weights do not load ({type(exc).__name__}: {exc})") from exc
            quantize_int8(fp32_onnx, Path(tmp) / ONNX_INT8_FILE)
            shutil.move(Path(tmp) / ONNX_INT8_FILE, target / ONNX_INT8_FILE)
    card.variants = {**card.variants, "onnx-int8": ONNX_INT8_FILE}
    if checked is not None:
        check, data = checked
        card.metrics = {**card.metrics, "quantization_check": compare_variants(target, card, check, data)}
    if drop_fp32:
        for name in _TORCH_ONLY:
            (target / name).unlink(missing_ok=True)
        card.variants = {k: v for k, v in card.variants.items() if k != "fp32"}
        card.notes = (
            card.notes + " fp32 weights dropped to fit in git; rebuild them with the reproduce command."
        ).strip()


def compare_variants(directory: Path, card: ModelCard, check: DataSource, data: LabeledData) -> dict[str, Any]:
    """Accuracy of fp32 and int8 on one labeled file, and how often their labels agree."""
    from core.config import ModelSettings
    from model.evaluate import evaluate_scorer
    from model.scorer import load_scorer

    write_card(directory, card)
    result: dict[str, Any] = {"file": check.display_name, "n": len(data), "max_length": card.max_length}
    labels = {}
    for variant in ("fp32", "onnx-int8"):
        # At the length it was trained with, whatever MODEL_MAX_LENGTH the shell has for its worker.
        settings = ModelSettings(variant=variant, device="cpu", max_length=card.max_length)
        scorer = load_scorer(directory, settings)
        report = evaluate_scorer(scorer, data)
        result[variant] = {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"]}
        labels[variant] = [s.label for s in scorer.predict(data.texts)]
    same = sum(a == b for a, b in zip(labels["fp32"], labels["onnx-int8"], strict=True))
    result["label_agreement"] = round(same / max(len(data), 1), 4)
    result["accuracy_delta_pt"] = round(100 * (result["onnx-int8"]["accuracy"] - result["fp32"]["accuracy"]), 2)
    return result


def _read_check(check: DataSource) -> LabeledData:
    return load_labeled(check, "binary" if _is_binary(check) else "stars3")


def _is_binary(source: DataSource) -> bool:
    """A DataError naming the columns when the file has no label column (was a bare KeyError)."""
    from model.data import check_columns, infer_scheme, read_rows

    if source.stars_column:
        return False
    rows = read_rows(source.path)
    column = check_columns(rows, source)
    return infer_scheme(row.get(column) for row in rows) == "binary"
