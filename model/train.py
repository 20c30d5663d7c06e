"""Fine-tune a transformer (or train the char-CNN) and save a self-describing artifact.

One loop for both architectures: class-weighted cross-entropy, AdamW with linear warmup and
decay, length-grouped batches padded per batch (dynamic padding), early stopping on validation
macro-F1, per-epoch metrics as JSON and curves as PNG, a calibration temperature fitted on the
validation split, and a model card with data hashes and the command that reproduces it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import re
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, Protocol, get_args

import numpy as np
import numpy.typing as npt
import torch

from model.artifact import (
    CARD_FILE,
    FP32_FILE,
    ModelCard,
    read_card,
    weights_config,
    weights_label_count,
    write_card,
)
from model.data import (
    SCHEMES,
    DataSource,
    LabeledData,
    LabelScheme,
    class_weights,
    concat,
    load_labeled,
    stratified_split,
)
from model.evaluate import calibrate, evaluate_logits, evaluate_scorer
from model.metrics import classification_report
from model.scorer import BatchedScorer

log = logging.getLogger(__name__)

Architecture = Literal["transformer", "charcnn"]
Pooling = Literal["cls", "mean"]
Precision = Literal["auto", "fp32", "bf16"]
BinaryFiles = Literal["mapped", "pair"]
# TrainArgs fields typed as a Literal: a config or CLI value outside these is refused, not guessed at.
_CHOICES: dict[str, tuple[str, ...]] = {
    "architecture": get_args(Architecture),
    "pooling": get_args(Pooling),
    "label_scheme": get_args(LabelScheme),
    "precision": get_args(Precision),
    "binary_files": get_args(BinaryFiles),
}


def _data_source(entry: Any, where: str) -> DataSource:
    """One ``train``/``eval`` entry of a config: a path, or a table of DataSource fields."""
    if isinstance(entry, (str, os.PathLike)):
        return DataSource(path=os.fspath(entry))
    if not isinstance(entry, dict):
        raise ValueError(f"a {where} entry must be a path or a table of data-source fields, not {entry!r}")
    known = {f.name for f in fields(DataSource)}
    unknown = set(entry) - known
    if unknown or "path" not in entry:
        problem = f"unknown fields {sorted(unknown)}" if unknown else "no path"
        raise ValueError(f"{where} entry {entry!r}: {problem} (fields: {', '.join(sorted(known))})")
    return DataSource(
        **{name: _typed(DataSource, name, value, f"{where} entry {entry['path']!r}: ") for name, value in entry.items()}
    )


def _typed(owner: type, name: str, value: Any, where: str = "") -> Any:
    """``value`` as the type ``owner.name`` declares, or a ValueError naming the option.

    YAML reads ``1e-3`` as a string and ``"5"`` stays one: converted where the meaning is plain
    (numeric strings, ``true``/``false``), refused otherwise, before any data is read or a model
    built, instead of a TypeError deep in training. Choices are left to ``__post_init__``.
    """
    from typing import Literal, get_origin, get_type_hints

    from pydantic import TypeAdapter, ValidationError

    hint = get_type_hints(owner)[name]
    if get_origin(hint) is Literal:
        return value
    if hint is str and isinstance(value, (int, float, os.PathLike)) and not isinstance(value, bool):
        value = os.fspath(value) if isinstance(value, os.PathLike) else str(value)  # a Path, a name like 2024
    try:
        return TypeAdapter(hint).validate_python(value)
    except ValidationError as exc:
        raise ValueError(f"{where}{name}: {exc.errors()[0]['msg'].lower()}, not {value!r}") from None


@dataclass
class TrainArgs:
    """Arguments of ``reviewscore train``; each field's ``help`` is the CLI/config documentation."""

    output_dir: str = field(metadata={"help": "Directory the artifact is written to."})
    train: list[DataSource] = field(default_factory=list, metadata={"help": "Labeled training files."})
    eval: list[DataSource] = field(
        default_factory=list, metadata={"help": "Held-out files evaluated at the end (metrics go in the card)."}
    )
    architecture: Architecture = field(
        default="transformer", metadata={"help": "transformer (fine-tune a checkpoint) or charcnn."}
    )
    base_model: str = field(
        default="minilm", metadata={"help": "Local checkpoint directory, or 'minilm' for the packaged MiniLM-L6."}
    )
    pooling: Pooling = field(
        default="cls",
        metadata={"help": "Transformer head input: the checkpoint's [CLS] head, or the mean over the tokens."},
    )
    label_scheme: LabelScheme = field(default="stars3", metadata={"help": "binary or stars3 (neg/neutral/pos)."})
    binary_files: BinaryFiles = field(
        default="mapped",
        metadata={
            "help": "How a binary-labelled file trains a stars3 model: mapped (its rows are negative or positive "
            "of the three classes) or pair (its loss, and its validation rows, see only the negative and "
            "positive logits: it teaches polarity without teaching that no review is neutral)."
        },
    )
    max_length: int = field(default=128, metadata={"help": "Tokens (characters for the char-CNN) kept per review."})
    epochs: int = field(default=3, metadata={"help": "Most passes over the training data."})
    batch_size: int = field(default=32, metadata={"help": "Reviews per optimizer step."})
    learning_rate: float = field(default=5e-5, metadata={"help": "Peak learning rate after warmup."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay (not on biases and norms)."})
    layer_lr_decay: float = field(
        default=1.0,
        metadata={
            "help": "Layer-wise learning-rate decay: the head trains at learning_rate, each transformer layer "
            "below it at this factor of the one above, the embeddings last (1: one rate for all)."
        },
    )
    warmup_ratio: float = field(default=0.06, metadata={"help": "Fraction of steps spent warming up linearly."})
    class_weighting: bool = field(default=True, metadata={"help": "Weight the loss by inverse class frequency."})
    class_weight_power: float = field(
        default=1.0,
        metadata={
            "help": "Exponent on the inverse-frequency weights: 1 full, 0.5 square root (softer on skewed data)."
        },
    )
    precision: Precision = field(
        default="auto",
        metadata={"help": "bf16 autocast for the forward pass; auto uses it on AMX/AVX-512-BF16 CPUs."},
    )
    patience: int = field(
        default=1,
        metadata={"help": "Epochs without a validation macro-F1 gain that are tolerated; one more stops training."},
    )
    validation_fraction: float = field(
        default=0.1,
        metadata={"help": "Share of each training file held out (above 0: it picks the epoch and the temperature)."},
    )
    max_steps: int = field(default=0, metadata={"help": "Stop after this many optimizer steps (0: no limit)."})
    stop_after_epoch: int = field(
        default=0, metadata={"help": "End after this epoch, keeping the learning-rate schedule of `epochs` (0: off)."}
    )
    seed: int = field(default=42, metadata={"help": "Seed for sampling, splitting, initialisation and order."})
    num_threads: int = field(default=0, metadata={"help": "torch CPU threads (0: library default)."})
    progress: bool = field(default=True, metadata={"help": "Show a progress bar."})
    charcnn: dict[str, Any] = field(default_factory=dict, metadata={"help": "Char-CNN widths (channels, hidden)."})
    name: str = field(default="reviewscore-sentiment", metadata={"help": "Model name, prefix of the version."})
    reproduce: str = field(default="", metadata={"help": "Command recorded in the model card (default: argv)."})

    def __post_init__(self) -> None:
        """Refuse what type hints cannot: a misspelt choice would otherwise train something else, or crash later."""
        for name, allowed in _CHOICES.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
        # The CLI's own bounds, for values from a config file too (batch_size 0 was a ZeroDivisionError).
        for name, least in (("epochs", 1), ("batch_size", 1), ("max_length", 8), ("num_threads", 0), ("max_steps", 0)):
            if getattr(self, name) < least:
                raise ValueError(f"{name} must be at least {least}, not {getattr(self, name)}")
        if self.patience < 0:
            raise ValueError(f"patience must be at least 0, not {self.patience}")
        for name in ("learning_rate", "weight_decay", "warmup_ratio", "class_weight_power", "stop_after_epoch"):
            if getattr(self, name) < 0:  # a -1 learning rate trained uphill, quietly
                raise ValueError(f"{name} must be at least 0, not {getattr(self, name)}")
        if not 0 < self.layer_lr_decay <= 1:
            raise ValueError(f"layer_lr_decay must be above 0 and at most 1, not {self.layer_lr_decay}")
        if self.learning_rate == 0 or self.warmup_ratio >= 1:
            raise ValueError(
                "learning_rate must be above 0 and warmup_ratio below 1, "
                f"not {self.learning_rate} and {self.warmup_ratio}"
            )
        widths = {"channels", "hidden", "dropout"}  # the rest of CharCNNConfig comes from the other options
        if unknown := sorted(set(self.charcnn) - widths):
            # A typo reached CharCNNConfig as a TypeError traceback, after all the data had loaded.
            raise ValueError(f"charcnn takes {', '.join(sorted(widths))}, not {', '.join(unknown)}")
        names = [source.display_name for source in self.eval]
        clash = sorted({n for n in names if names.count(n) > 1} | ({"validation", "quantization_check"} & set(names)))
        if clash:
            # Metrics are keyed by these names in the card: a second file of one name overwrote the first.
            raise ValueError(
                f"evaluation files need distinct names other than validation and quantization_check: {clash} "
                "(give each a `name:` in the config)"
            )
        if not 0 < self.validation_fraction < 1:
            raise ValueError(
                f"validation_fraction must be above 0 and below 1, not {self.validation_fraction}: the validation "
                "split picks the best epoch, stops early and fits the calibration temperature"
            )

    @classmethod
    def from_dict(cls, data: Any) -> TrainArgs:
        if not isinstance(data, dict):
            raise ValueError(f"a training config maps option names to values, not a {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown training options {sorted(unknown)}")
        # An option left empty in YAML (`max_steps:`) is null: the option's default, as if absent.
        values = {key: value for key, value in data.items() if key not in ("train", "eval") and value is not None}
        values = {key: _typed(cls, key, value) for key, value in values.items()}
        for key in ("train", "eval"):
            sources = data.get(key) or []
            if not isinstance(sources, list):
                raise ValueError(f"{key} is a list of data sources (paths or tables), not {sources!r}")
            values[key] = [_data_source(s, key) for s in sources]
        if "output_dir" not in values:
            raise ValueError("output_dir is missing: give --output (or output_dir in the config)")
        return cls(**values)

    @classmethod
    def from_file(cls, path: Path, **overrides: Any) -> TrainArgs:
        """A YAML or JSON config keyed by field name; relative data paths resolve against the working directory."""
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() in {".yaml", ".yml"}:
            import yaml

            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise ValueError(f"{path}: not valid YAML ({exc})".replace("\n", " ")) from None
        else:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: not valid JSON ({exc})") from None
        if data is None:  # an empty file: every option from the command line
            data = {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a training config maps option names to values, not a {type(data).__name__}")
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(data)


class Trainee(Protocol):
    """What the loop needs from an architecture."""

    @property
    def model(self) -> torch.nn.Module: ...

    def encode(self, texts: Sequence[str]) -> list[list[int]]: ...

    def logits(self, batch: list[list[int]]) -> torch.Tensor: ...

    def save(self, directory: Path) -> None: ...

    def scorer(self, card: ModelCard) -> BatchedScorer: ...


class TransformerTrainee:
    def __init__(self, args: TrainArgs, labels: Sequence[str]) -> None:
        from model.transformer import build_classifier

        self.model, self.tokenizer = build_classifier(args.base_model, labels, args.pooling)
        self.max_length = args.max_length
        self.pad_id = int(self.tokenizer.pad_token_id or 0)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        from model.tokenization import encode

        return encode(self.tokenizer, texts, self.max_length)

    def logits(self, batch: list[list[int]]) -> torch.Tensor:
        from model.tokenization import pad_batch

        ids, mask = pad_batch(batch, self.pad_id)
        out: torch.Tensor = self.model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).logits
        return out

    def save(self, directory: Path) -> None:
        self.model.save_pretrained(str(directory))
        self.tokenizer.save_pretrained(str(directory))

    def scorer(self, card: ModelCard) -> BatchedScorer:
        from model.transformer import TransformerScorer

        return TransformerScorer(self.model, self.tokenizer, card, max_length=self.max_length, max_batch_tokens=8192)


class CharCNNTrainee:
    def __init__(self, args: TrainArgs, labels: Sequence[str]) -> None:
        from model.charcnn import CharCNN, CharCNNConfig

        self.config = CharCNNConfig(num_labels=len(labels), max_length=args.max_length, **args.charcnn)
        self.model = CharCNN(self.config)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        from model.charcnn import encode_chars

        return encode_chars(texts, self.config.max_length)

    def logits(self, batch: list[list[int]]) -> torch.Tensor:
        from model.charcnn import pad_chars

        out: torch.Tensor = self.model(pad_chars(batch, self.config.max_length))
        return out

    def save(self, directory: Path) -> None:
        from model.charcnn import save_charcnn

        save_charcnn(self.model, directory)

    def scorer(self, card: ModelCard) -> BatchedScorer:
        from model.charcnn import CharCNNScorer

        return CharCNNScorer(self.model, card)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def training_autocast(precision: str) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    """bf16 autocast where the hardware makes it fast: 2.3x the fp32 step on an AVX-512-BF16 EPYC.

    Weights and optimizer state stay fp32 (autocast only lowers the matmuls), so the saved
    checkpoint is the usual fp32 one.
    """
    from model.scorer import cpu_has_fast_bf16

    if precision == "bf16" or (precision == "auto" and cpu_has_fast_bf16()):
        return lambda: torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext


def length_grouped_batches(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of similar lengths: shuffle, sort within windows of 50 batches, shuffle batches.

    Padding to the longest of a batch is cheap when its members have similar lengths, while the
    window keeps every epoch's order random.
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def prepare_data(args: TrainArgs) -> tuple[LabeledData, LabeledData]:
    """Each training file is split on its own (stratified), so validation mixes every source."""
    trains, vals = [], []
    for source in args.train:
        data = load_labeled(source, args.label_scheme, args.seed)
        if _polarity_only(source, args):
            data.polarity_only = [True] * len(data)
        train, val = stratified_split(data, [args.validation_fraction], args.seed)
        trains.append(train)
        vals.append(val)
        log.info("%s: %d train, %d validation, balance %s", source.display_name, len(train), len(val), data.balance())
    if not trains:
        raise ValueError("no training files given")
    train = concat(trains)
    validation = _without_texts(concat(vals), set(train.texts))
    if not validation.texts:
        rows = sum(len(t) for t in trains)
        raise ValueError(
            f"the validation split is empty ({rows} training rows, validation_fraction {args.validation_fraction} "
            "rounds to no row of any class): raise validation_fraction or add data"
        )
    return train, validation


def _polarity_only(source: DataSource, args: TrainArgs) -> bool:
    """Whether ``source``'s rows train only the negative/positive pair (``binary_files: pair``)."""
    if args.binary_files != "pair" or args.label_scheme != "stars3" or source.stars_column:
        return False
    return _scheme_of(source, args.label_scheme) == "binary"


def pair_masked_logits(logits: npt.NDArray[np.float32], data: LabeledData) -> npt.NDArray[np.float32]:
    """Logits with neutral ruled out on the rows whose label only says negative or positive.

    Such a row is judged, calibrated and trained between negative and positive, as the model is
    judged on a binary file (``P(positive) >= P(negative)``); the neutral mass it gives that
    text is not an error, since its label never said the text was not neutral.
    """
    if not data.polarity_only or "neutral" not in data.label_names:
        return logits
    masked = np.array(logits, dtype=np.float32, copy=True)
    masked[np.asarray(data.polarity_only), data.label_names.index("neutral")] = _RULED_OUT
    return masked


_RULED_OUT = -1e4
"""A logit no float32 softmax gives mass to, in the loss and in validation (finite: no ``inf - inf``
in a temperature fit); its class gets exactly zero gradient."""


def _without_texts(data: LabeledData, texts: set[str]) -> LabeledData:
    """``data`` less the rows whose text is in ``texts``: a review in two training files, split
    each on its own, could land in training from one and in validation from the other, and
    validation picks the epoch, stops training and fits the temperature."""
    kept = [i for i, text in enumerate(data.texts) if text not in texts]
    if len(kept) < len(data.texts):
        log.info("validation: %d rows whose text another file trains on were left out", len(data.texts) - len(kept))
    return replace(data.subset(kept), sources=data.sources)


_LAYER_INDEX = re.compile(r"(?:^|\.)layers?\.(\d+)\.")


def layer_depths(names: list[str]) -> dict[str, int]:
    """Each parameter's distance below the head, for layer-wise learning-rate decay.

    Transformer blocks are numbered in their names (``encoder.layer.3.``); embeddings sit below
    the first block and everything else (pooler, classifier, a char-CNN) is the head, depth 0.
    Pure so the mapping is testable without building a model.
    """
    indices = [int(match.group(1)) for name in names if (match := _LAYER_INDEX.search(name))]
    top = max(indices, default=-1) + 1
    depths = {}
    for name in names:
        if match := _LAYER_INDEX.search(name):
            depths[name] = top - int(match.group(1))
        elif "embeddings." in name and indices:
            depths[name] = top + 1
        else:
            depths[name] = 0
    return depths


def _optimizer(model: torch.nn.Module, args: TrainArgs, total_steps: int) -> tuple[Any, Any]:
    named = [(name, param) for name, param in model.named_parameters() if param.requires_grad]
    depths = layer_depths([name for name, _ in named])
    groups: dict[tuple[int, bool], list[torch.nn.Parameter]] = {}
    for name, param in named:
        decays = not (param.ndim < 2 or "norm" in name.lower())
        depth = depths[name] if args.layer_lr_decay != 1 else 0
        groups.setdefault((depth, decays), []).append(param)
    optimizer = torch.optim.AdamW(
        [
            {
                "params": params,
                "weight_decay": args.weight_decay if decays else 0.0,
                "lr": args.learning_rate * args.layer_lr_decay**depth,
            }
            for (depth, decays), params in sorted(groups.items(), key=lambda item: (item[0][0], not item[0][1]))
        ],
        lr=args.learning_rate,
    )
    warmup = max(1, int(total_steps * args.warmup_ratio))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train(args: TrainArgs) -> ModelCard:
    """Train, keep the best epoch by validation macro-F1, calibrate, evaluate, write the artifact."""
    seed_everything(args.seed)
    previous_threads = torch.get_num_threads()
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    try:
        return _train(args)
    finally:
        torch.set_num_threads(previous_threads)


def _train(args: TrainArgs) -> ModelCard:
    from tqdm import tqdm

    labels = list(SCHEMES[args.label_scheme])
    output = Path(args.output_dir)
    evaluations = read_evaluations(args)  # now: a bad file fails before the training, not after it
    output.mkdir(parents=True, exist_ok=True)
    train_data, val_data = prepare_data(args)
    trainee: Trainee = (
        TransformerTrainee(args, labels) if args.architecture == "transformer" else CharCNNTrainee(args, labels)
    )
    train_ids = trainee.encode(train_data.texts)
    lengths = [len(ids) for ids in train_ids]
    weights = (
        class_weights(train_data.labels, len(labels), args.class_weight_power)
        if args.class_weighting
        else [1.0] * len(labels)
    )
    autocast = training_autocast(args.precision)
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32))
    steps_per_epoch = math.ceil(len(train_ids) / args.batch_size)
    total_steps = steps_per_epoch * args.epochs
    if args.max_steps:
        total_steps = min(total_steps, args.max_steps)
    optimizer, scheduler = _optimizer(trainee.model, args, total_steps)
    card = _new_card(
        args,
        labels,
        train_data.sources,
        _jsonable(asdict(args)),
        args.reproduce or "reviewscore " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
    )
    # Rows of a binary file in pair mode (flagged only for a stars3 model): neutral ruled out of their loss.
    pair_rows = torch.tensor(train_data.polarity_only) if train_data.polarity_only else None
    rng = random.Random(args.seed)
    history: list[dict[str, Any]] = []
    best_f1, stale, step = -1.0, 0, 0
    started = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        trainee.model.train()
        batches = length_grouped_batches(lengths, args.batch_size, rng)
        running, seen = 0.0, 0
        bar = tqdm(batches, desc=f"epoch {epoch}", disable=not args.progress, mininterval=5, file=sys.stderr)
        for batch in bar:
            with autocast():
                logits = trainee.logits([train_ids[i] for i in batch])
            target = torch.tensor([train_data.labels[i] for i in batch])
            logits = logits.float()
            if pair_rows is not None:
                ruled_out = torch.zeros_like(logits, dtype=torch.bool)
                ruled_out[:, labels.index("neutral")] = pair_rows[batch]
                logits = logits.masked_fill(ruled_out, _RULED_OUT)
            loss = loss_fn(logits, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainee.model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            running += loss.item() * len(batch)
            seen += len(batch)
            step += 1
            bar.set_postfix(loss=f"{running / seen:.4f}", refresh=False)
            if args.max_steps and step >= args.max_steps:
                break
        bar.close()
        trainee.model.eval()
        val_logits = pair_masked_logits(trainee.scorer(card).logits(val_data.texts), val_data)
        report = classification_report(val_data.labels, [int(k) for k in val_logits.argmax(axis=1)], labels)
        entry = {
            "epoch": epoch,
            "step": step,
            "train_loss": round(running / max(seen, 1), 5),
            "val_accuracy": report["accuracy"],
            "val_macro_f1": report["macro_f1"],
            "lr": scheduler.get_last_lr()[0],
            "elapsed_s": round(time.perf_counter() - started, 1),
        }
        history.append(entry)
        log.info("epoch %s", entry)
        print(json.dumps(entry), file=sys.stderr, flush=True)
        if report["macro_f1"] > best_f1:
            best_f1, stale = report["macro_f1"], 0
            trainee.save(output)
        else:
            stale += 1
        _write_history(output, history)
        if stale > args.patience or (args.max_steps and step >= args.max_steps):
            break
        if args.stop_after_epoch and epoch >= args.stop_after_epoch:
            break
    return finish(output, card, val_data, args, evaluations=evaluations)


def read_evaluations(args: TrainArgs) -> list[tuple[DataSource, LabeledData]]:
    """The held-out files (``--eval``), each in the scheme it is judged in."""
    return [(source, load_labeled(source, _scheme_of(source, args.label_scheme), args.seed)) for source in args.eval]


def finish(
    output: Path,
    card: ModelCard,
    val_data: LabeledData,
    args: TrainArgs,
    variant: str = "fp32",
    evaluations: list[tuple[DataSource, LabeledData]] | None = None,
) -> ModelCard:
    """Reload the best epoch, fit the temperature on validation, evaluate the held-out files, write the card.

    ``variant`` is the one calibrated and evaluated: the shipped default calibrates its int8 file.
    """
    from core.config import ModelSettings
    from model.scorer import load_scorer

    write_card(output, card)  # provisional card so the best weights load as an artifact
    settings = ModelSettings.model_validate(
        {"variant": variant, "device": "cpu", "max_length": args.max_length, "num_threads": args.num_threads}
    )
    scorer = load_scorer(output, settings)
    val_logits = pair_masked_logits(scorer.logits(val_data.texts), val_data)
    card.calibration = calibrate(val_logits, val_data.labels)
    card.temperature = card.calibration["temperature"]
    scorer.card.temperature = card.temperature
    card.metrics = {"validation": evaluate_logits(val_logits, val_data, card.labels, card.temperature)}
    for source, data in read_evaluations(args) if evaluations is None else evaluations:
        card.metrics[source.display_name] = evaluate_scorer(scorer, data)
        card.data_sources = [*card.data_sources, {**data.sources[0], "role": "evaluation"}]
    return write_card(output, card)


def finalize(args: TrainArgs, *, int8: bool = False) -> ModelCard:
    """Card, calibration and evaluation for weights already saved in ``args.output_dir``.

    For a run stopped before its last epoch (the best epoch so far is always on disk): rebuilds
    the same validation split from the same seed, optionally adds the int8 variant first and
    calibrates that, and records which epochs ran.
    """
    from model.quantize import quantize_artifact

    output = Path(args.output_dir)
    history = json.loads((output / "training_metrics.json").read_text(encoding="utf-8"))
    labels = list(SCHEMES[args.label_scheme])
    _refuse_other_settings(output, args, labels)
    train_data, val_data = prepare_data(args)
    card = _new_card(
        args, labels, train_data.sources, {**_jsonable(asdict(args)), "epochs_run": history}, args.reproduce
    )
    card_file = output / CARD_FILE
    before = card_file.read_bytes() if card_file.is_file() else None
    try:
        write_card(output, card)
        variant = "fp32"
        if int8:
            card = quantize_artifact(output)
            variant = "onnx-int8"
        return finish(output, card, val_data, args, variant)
    except BaseException:
        # A finalize that fails must not leave a card that no longer loads the weights it sits beside.
        if before is not None:
            card_file.write_bytes(before)
        raise


def _refuse_other_settings(output: Path, args: TrainArgs, labels: list[str]) -> None:
    """Finalizing with other settings than the run's (a forgotten --label-scheme, --max-length or
    --architecture) wrote a card that could not load the weights, or cut texts at another length."""
    trained: dict[str, Any]
    asked: dict[str, Any]
    if (output / CARD_FILE).is_file():
        card = read_card(output)
        trained = {"architecture": card.architecture, "labels": card.labels, "max_length": card.max_length}
        asked = {"architecture": args.architecture, "labels": labels, "max_length": args.max_length}
        if card.training.get("pooling") not in (None, args.pooling):
            trained["pooling"], asked["pooling"] = card.training["pooling"], args.pooling
        # Which validation rows are judged between negative and positive only: the temperature's data.
        if (mode := card.training.get("binary_files", "mapped")) != args.binary_files:
            trained["binary_files"], asked["binary_files"] = mode, args.binary_files
    else:  # a run stopped before its card was written: what its files say
        architecture = "charcnn" if (output / "charcnn_config.json").is_file() else "transformer"
        count = weights_label_count(weights_config(output, architecture) or {}) or len(labels)
        trained = {"architecture": architecture, "number of labels": count}
        asked = {"architecture": args.architecture, "number of labels": len(labels)}
    differ = [f"{name} {trained[name]!r} (asked: {asked[name]!r})" for name in trained if trained[name] != asked[name]]
    if differ:
        raise ValueError(
            f"{output} was trained with {', '.join(differ)}: finalize it with the settings (or --config) it was "
            "trained with"
        )


def _scheme_of(source: DataSource, default: LabelScheme) -> LabelScheme:
    """Evaluate a file in its own scheme (binary files as binary), so the metric matches its labels."""
    from model.data import check_columns, infer_scheme, present_labels, read_rows, refuse_one_based_polarity

    if source.stars_column:
        return default
    if source.source_scheme:
        return source.source_scheme
    rows = read_rows(source.path)
    column = check_columns(rows, source)
    refuse_one_based_polarity(present_labels(r.get(column) for r in rows), source.display_name)
    return infer_scheme(r.get(column) for r in rows)


def _write_history(output: Path, history: list[dict[str, Any]]) -> None:
    (output / "training_metrics.json").write_text(json.dumps(history, indent=2) + "\n", encoding="utf-8")
    try:
        plot_curves(history, output / "training_curves.png")
    except Exception:
        log.exception("could not plot training curves")


def plot_curves(history: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.plot(epochs, [h["train_loss"] for h in history], marker="o")
    left.set_title("training loss")
    left.set_xlabel("epoch")
    right.plot(epochs, [h["val_macro_f1"] for h in history], marker="o", label="macro-F1")
    right.plot(epochs, [h["val_accuracy"] for h in history], marker="o", label="accuracy")
    right.set_title("validation")
    right.set_xlabel("epoch")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _new_card(args: TrainArgs, labels: list[str], sources: Any, training: dict[str, Any], reproduce: str) -> ModelCard:
    """The card of a run, before calibration and evaluation fill in their parts."""
    return ModelCard(
        architecture=args.architecture,
        labels=labels,
        max_length=args.max_length,
        name=args.name,
        base_model=args.base_model if args.architecture == "transformer" else "",
        label_scheme=args.label_scheme,
        variants={"fp32": FP32_FILE},
        data_sources=sources,
        training=training,
        reproduce=reproduce,
    )
