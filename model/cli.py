"""``reviewscore train | eval | quantize | score``: thin shells over the library functions.

Heavy imports (torch, transformers, onnxruntime) happen inside the commands so ``reviewscore
--help`` stays fast.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from model.data import DataSource, LabelScheme


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
    app.command("eval")(eval_command)
    app.command("quantize")(quantize_command)
    app.command("score")(score_command)


def train_command(
    train_files: Annotated[
        list[Path] | None,
        typer.Option("--train", help="Labeled training file (repeat for several; replaces the config's list)."),
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Artifact directory to write.")] = None,
    config: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="YAML/JSON file of training options.")
    ] = None,
    eval_files: Annotated[
        list[Path] | None,
        typer.Option("--eval", help="Held-out file evaluated at the end (repeat; replaces the config's list)."),
    ] = None,
    architecture: Annotated[str | None, typer.Option(help="transformer or charcnn.")] = None,
    base_model: Annotated[str | None, typer.Option(help="Checkpoint directory, or 'minilm'.")] = None,
    label_scheme: Annotated[str | None, typer.Option(help="binary or stars3.")] = None,
    pooling: Annotated[str | None, typer.Option(help="Transformer head input: cls (default) or mean.")] = None,
    binary_files: Annotated[
        str | None,
        typer.Option(help="A binary file in a stars3 model: mapped (default) or pair (trains negative/positive only)."),
    ] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Most epochs.")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Reviews per step.")] = None,
    learning_rate: Annotated[float | None, typer.Option(help="Peak learning rate.")] = None,
    layer_lr_decay: Annotated[
        float | None,
        typer.Option(help="Each transformer block learns at this factor of the one above it (1: one rate)."),
    ] = None,
    max_length: Annotated[int | None, typer.Option(min=8, help="Tokens kept per review.")] = None,
    max_per_class: Annotated[
        int | None, typer.Option(min=1, help="Class-balanced cap per training file (CLI files only).")
    ] = None,
    max_steps: Annotated[int | None, typer.Option(min=1, help="Stop after this many steps.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="torch CPU threads.")] = None,
    progress: Annotated[
        bool | None,
        typer.Option("--progress/--no-progress", help="Show a progress bar (default: the config's, else yes)."),
    ] = None,
    finalize_only: Annotated[
        bool,
        typer.Option(
            "--finalize-only", help="Skip training: card, calibrate and evaluate the weights already in the output."
        ),
    ] = False,
    int8: Annotated[bool, typer.Option(help="With --finalize-only: add the int8 variant and calibrate that.")] = False,
) -> None:
    """Train a classifier and write an artifact (weights, tokenizer, model card, metrics, curves)."""
    from model.train import TrainArgs, finalize, train

    overrides: dict[str, Any] = {
        "output_dir": str(output) if output else None,
        "architecture": architecture,
        "base_model": base_model,
        "label_scheme": label_scheme,
        "pooling": pooling,
        "binary_files": binary_files,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "layer_lr_decay": layer_lr_decay,
        "max_length": max_length,
        "max_steps": max_steps,
        "seed": seed,
        "num_threads": threads,
    }
    if train_files:
        overrides["train"] = [{"path": str(p), "max_per_class": max_per_class} for p in train_files]
    if eval_files:
        overrides["eval"] = [{"path": str(p)} for p in eval_files]
    if max_per_class is not None and not train_files:  # it would be dropped without a word
        typer.echo(
            "error: --max-per-class caps the --train files; "
            "for a config's files set max_per_class in its train entries",
            err=True,
        )
        raise typer.Exit(2)
    if int8 and not finalize_only:  # a full run calibrates fp32; int8 is `quantize`'s job then
        typer.echo("error: --int8 goes with --finalize-only; after a full run, use `reviewscore quantize`", err=True)
        raise typer.Exit(2)
    try:
        if config:
            args = TrainArgs.from_file(config, **overrides)
        else:
            if not output or not train_files:
                raise ValueError("give --train and --output (or --config)")
            args = TrainArgs.from_dict({k: v for k, v in overrides.items() if v is not None})
        if progress is not None:  # the flag given: it wins over the config's `progress:`
            args.progress = progress
        card = finalize(args, int8=int8) if finalize_only else train(args)
    except (ValueError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"wrote {args.output_dir} (version {card.version})")
    typer.echo(json.dumps({k: _headline(v) for k, v in card.metrics.items()}, indent=2))


def eval_command(
    model_dir: Annotated[Path, typer.Argument(help="Artifact directory.")],
    file: Annotated[Path, typer.Argument(help="Labeled file (CSV, JSONL, Parquet).")],
    text_column: Annotated[str, typer.Option(help="Column holding the text.")] = "text",
    label_column: Annotated[str, typer.Option(help="Column holding the label.")] = "label",
    stars_column: Annotated[str | None, typer.Option(help="Use 1-5 stars from this column instead.")] = None,
    scheme: Annotated[str | None, typer.Option(help="Evaluate as binary or stars3 (default: the file's).")] = None,
    source_scheme: Annotated[
        str | None,
        typer.Option(
            help="How the file's integer labels are coded: binary (0 negative, 1 positive) or stars3 "
            "(0 negative, 1 neutral, 2 positive). Default: inferred from the whole file's labels."
        ),
    ] = None,
    variant: Annotated[str, typer.Option(help="auto, fp32, bf16, onnx-int8.")] = "auto",
    output: Annotated[Path | None, typer.Option(help="Directory for eval JSON + confusion PNG.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Evaluate the first N rows only.")] = None,
    max_length: Annotated[
        int | None,
        typer.Option(min=8, help="Tokens kept per review (default: the length the model was trained with)."),
    ] = None,
) -> None:
    """Accuracy, macro-F1, per-class precision/recall, confusion matrix and calibration on a labeled file."""
    from core.config import ModelSettings
    from model.artifact import ArtifactError, read_card
    from model.data import DataError, DataSource, parse_scheme, read_rows, to_labeled
    from model.evaluate import evaluate_scorer, save_report
    from model.scorer import load_scorer

    try:
        # Not MODEL_MAX_LENGTH: a shell set up for a worker that truncates harder would quietly
        # lower the figures of a report that does not say so.
        length = max_length or read_card(model_dir).max_length
        settings = ModelSettings.model_validate({"variant": variant, "max_length": length})
        target = parse_scheme(scheme) if scheme else None
        source = DataSource(
            str(file), text_column, label_column, stars_column, parse_scheme(source_scheme) if source_scheme else None
        )
        scorer = load_scorer(model_dir, settings)
        rows = read_rows(file)
        if source.source_scheme is None and stars_column is None:
            source = replace(source, source_scheme=_file_scheme(rows, source))
        data = to_labeled(rows[:limit] if limit else rows, source, target or source.source_scheme or "stars3")
        report = evaluate_scorer(scorer, data)
    except (ArtifactError, DataError, KeyError, ValueError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    report["model_version"] = scorer.model_version
    report["variant"] = scorer.variant
    report["max_length"] = scorer.max_length
    report["file"] = str(file)
    report["skipped"] = data.sources[0]["skipped"]
    for label, count in report.get("not_judged", {}).items():
        typer.echo(f"warning: {count} {label} rows not judged: the model has no {label!r} label", err=True)
    if output:
        try:
            paths = save_report(report, output, name=file.stem)
        except OSError as exc:  # --output naming a file, or a directory not writable
            typer.echo(f"error: cannot write the report to {output}: {exc}", err=True)
            raise typer.Exit(2) from exc
        typer.echo(f"wrote {paths['json']} and {paths['png']}", err=True)
    typer.echo(json.dumps(report, indent=2))


def _file_scheme(rows: list[dict[str, Any]], source: DataSource) -> LabelScheme:
    """The scheme of the whole file's labels (not of a --limit slice), with a warning when 0/1 could be either.

    A three-class file whose rows hold no neutral label looks binary; read as binary its 1s
    would become positive, so the user is told how to say otherwise.
    """
    from model.data import check_columns, infer_scheme, present_labels

    column = check_columns(rows, source)
    labels = present_labels(row.get(column) for row in rows)
    inferred = infer_scheme(labels)
    if labels <= {"0", "1"}:
        typer.echo(
            f"warning: label scheme inferred as binary from values {sorted(labels)} (1 = positive); "
            "pass --source-scheme stars3 if 1 means neutral",
            err=True,
        )
    elif labels < {"0", "1", "2"}:  # {1, 2}: 1-based polarity (Amazon, Yelp) would read as neutral/positive
        typer.echo(
            f"warning: label scheme inferred as three-class from values {sorted(labels)} "
            "(0 negative, 1 neutral, 2 positive); if they mean negative/positive, map them to 0/1 first",
            err=True,
        )
    return inferred


def quantize_command(
    model_dir: Annotated[Path, typer.Argument(help="Artifact directory with fp32 weights.")],
    output: Annotated[Path | None, typer.Option(help="Write a new artifact here (default: in place).")] = None,
    drop_fp32: Annotated[bool, typer.Option(help="Leave out the fp32 weights (for shipping in git).")] = False,
    check: Annotated[Path | None, typer.Option(help="Labeled file to compare fp32 and int8 accuracy on.")] = None,
) -> None:
    """Add the ONNX Runtime dynamic int8 variant (the CPU default) to an artifact."""
    from model.artifact import ArtifactError
    from model.data import DataSource
    from model.quantize import quantize_artifact

    try:
        card = quantize_artifact(
            model_dir, output, drop_fp32=drop_fp32, check=DataSource(str(check)) if check else None
        )
    except (ArtifactError, OSError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"wrote {output or model_dir} (version {card.version}, variants {sorted(card.variants)})")
    if "quantization_check" in card.metrics:
        typer.echo(json.dumps(card.metrics["quantization_check"], indent=2))


def score_command(
    texts: Annotated[list[str], typer.Argument(help="Review texts to score.")],
    model_dir: Annotated[
        Path | None, typer.Option("--model", help="Artifact (default: MODEL_PATH or shipped).")
    ] = None,
) -> None:
    """Score texts and print one JSON object per line."""
    from dataclasses import asdict

    from model.artifact import ArtifactError
    from model.scorer import load_scorer

    try:
        scorer = load_scorer(model_dir)
    except (ArtifactError, ValueError, OSError) as exc:  # a card or weights that do not load
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    for text, score in zip(texts, scorer.predict(texts), strict=True):
        typer.echo(json.dumps({"text": text, **asdict(score)}, ensure_ascii=False))


def _headline(report: Any) -> Any:
    if isinstance(report, dict) and "accuracy" in report:
        return {k: report[k] for k in ("n", "accuracy", "macro_f1", "ece") if k in report}
    return report
