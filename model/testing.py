"""A real, tiny model for tests and demos: generated reviews, a local vocabulary, a 2-layer BERT.

``build_tiny_model`` runs the same training code as the default model (``model.train.train``)
on a few hundred generated reviews, so what the stream and API tests load is a genuine
artifact (weights, tokenizer, card, calibration), built in seconds with nothing downloaded.
Different seeds give different weights and therefore different model versions.
"""

from __future__ import annotations

import csv
import random
import tempfile
from pathlib import Path

from model.artifact import ModelCard, write_card
from model.data import DataSource

POSITIVE = ["great", "love", "excellent", "perfect", "wonderful", "happy", "amazing", "recommend", "😀", "best"]
NEGATIVE = ["terrible", "awful", "hate", "broken", "refund", "worst", "disappointed", "poor", "😡", "useless"]
NEUTRAL = ["okay", "average", "fine", "decent", "mixed", "ordinary", "acceptable", "so-so", "😐", "alright"]
FILLER = ["the", "dress", "shipping", "product", "fabric", "it", "was", "and", "this", "service", "a", "very", "my"]
_WORDS = {0: NEGATIVE, 1: NEUTRAL, 2: POSITIVE}
_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def generate_reviews(count: int, seed: int = 0, labels: int = 3) -> list[tuple[str, int]]:
    """``count`` short reviews with labels 0..labels-1 (negative, [neutral,] positive), balanced.

    Sentiment words carry the label; filler words and punctuation make lengths vary.
    """
    rng = random.Random(seed)
    classes = [0, 2] if labels == 2 else [0, 1, 2]
    rows = []
    for i in range(count):
        label = classes[i % len(classes)]
        words = rng.choices(FILLER, k=rng.randint(2, 12)) + rng.choices(_WORDS[label], k=rng.randint(1, 3))
        rng.shuffle(words)
        text = " ".join(words).capitalize() + rng.choice([".", "!", "", " !!"])
        rows.append((text, classes.index(label)))
    return rows


def write_reviews_csv(path: Path, count: int, seed: int = 0, labels: int = 3, stars: bool = False) -> Path:
    """A labeled CSV like the shared data sets (``text,label``; with ``stars`` also a 1-5 ``stars`` column)."""
    rows = generate_reviews(count, seed, labels)
    path.parent.mkdir(parents=True, exist_ok=True)
    star_of = {0: 1, 1: 3, 2: 5} if labels == 3 else {0: 1, 1: 5}
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label", "stars"] if stars else ["text", "label"])
        for text, label in rows:
            writer.writerow([text, label, star_of[label]] if stars else [text, label])
    return path


def build_tiny_base(directory: Path, seed: int = 0, max_length: int = 64) -> Path:
    """An untrained 2-layer, 32-wide BERT and a WordPiece tokenizer over the generated vocabulary.

    Single characters and their ``##`` continuations are in the vocabulary, so any ASCII text
    tokenizes into real ids (long texts become long token sequences, as with a real model).
    """
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    chars = sorted(set("abcdefghijklmnopqrstuvwxyz0123456789.,!?'-"))
    words = sorted({w.lower() for w in POSITIVE + NEGATIVE + NEUTRAL + FILLER})
    vocab = _SPECIAL + chars + [f"##{c}" for c in chars] + [w for w in words if w not in chars]
    tokenizer = BertTokenizer(vocab={token: i for i, token in enumerate(vocab)}, do_lower_case=True)
    tokenizer.model_max_length = max_length
    tokenizer.save_pretrained(str(directory))
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=max_length,
        num_labels=3,
    )
    BertForSequenceClassification(config).save_pretrained(str(directory))
    return directory


def build_tiny_model(
    out_dir: Path,
    seed: int = 0,
    *,
    examples: int = 600,
    epochs: int = 5,
    max_length: int = 64,
    int8: bool = False,
) -> Path:
    """Train and save a tiny three-class transformer artifact in ``out_dir``; returns ``out_dir``.

    Deterministic for a given seed; ``int8=True`` also adds the ONNX int8 variant (a few seconds more).
    """
    from model.train import TrainArgs, train

    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="tiny-model-") as tmp:
        base = build_tiny_base(Path(tmp) / "base", seed, max_length)
        data = write_reviews_csv(Path(tmp) / "reviews.csv", examples, seed)
        held_out = write_reviews_csv(Path(tmp) / "held_out.csv", 150, seed + 10_000)
        args = TrainArgs(
            output_dir=str(out_dir),
            train=[DataSource(str(data), name="generated")],
            eval=[DataSource(str(held_out), name="generated_held_out")],
            base_model=str(base),
            max_length=max_length,
            epochs=epochs,
            batch_size=16,
            learning_rate=1e-3,
            warmup_ratio=0.1,
            patience=epochs,
            seed=seed,
            progress=False,
            num_threads=1,
            name="tiny",
            reproduce=f"python -c 'from model.testing import build_tiny_model; build_tiny_model(DIR, seed={seed})'",
        )
        card: ModelCard = train(args)
        card.base_model = "tiny-bert (generated)"
        for source in card.data_sources:
            source["path"] = Path(source["path"]).name
    write_card(out_dir, card)
    if int8:
        from model.quantize import quantize_artifact

        quantize_artifact(out_dir)
    return out_dir
