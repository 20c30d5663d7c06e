"""The tutorial's character-level CNN (Zhang, Zhao & LeCun 2015): the lightweight option.

Text becomes a one-hot matrix over a 70-symbol alphabet (lower-cased, unknown symbols all-zero),
read by 6 convolutions and 3 fully connected layers with dropout. Widths are configurable so tests
can build a tiny one; the defaults are the paper's "small" model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from model.artifact import FP32_FILE, ArtifactError, ModelCard
from model.scorer import BatchedScorer

# 26 letters, 10 digits, 32 punctuation marks, space and newline: 70 symbols as in the paper.
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789-,;.!?:'\"/\\|_@#$%^&*~`+=<>()[]{} \n"
_INDEX = {ch: i + 1 for i, ch in enumerate(ALPHABET)}  # 0 is padding / unknown


@dataclass(frozen=True, slots=True)
class CharCNNConfig:
    num_labels: int = 3
    max_length: int = 1014
    channels: int = 256
    hidden: int = 1024
    dropout: float = 0.5


def encode_chars(texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Alphabet indices of each lower-cased text, truncated, unknown symbols as 0."""
    return [[_INDEX.get(ch, 0) for ch in text.lower()[:max_length]] for text in texts]


def conv_output_length(length: int) -> int:
    """Sequence length left after the six convolutions (kernels 7,7,3,3,3,3) and three pools of 3."""
    length = (length - 6) // 3
    length = (length - 6) // 3
    length = length - 8
    return length // 3


class CharCNN(nn.Module):
    def __init__(self, config: CharCNNConfig) -> None:
        super().__init__()
        if conv_output_length(config.max_length) < 1:
            raise ValueError(f"max_length {config.max_length} is too short for the char-CNN (needs >= 141)")
        self.config = config
        c = config.channels
        self.features = nn.Sequential(
            nn.Conv1d(len(ALPHABET), c, 7),
            nn.ReLU(),
            nn.MaxPool1d(3),
            nn.Conv1d(c, c, 7),
            nn.ReLU(),
            nn.MaxPool1d(3),
            nn.Conv1d(c, c, 3),
            nn.ReLU(),
            nn.Conv1d(c, c, 3),
            nn.ReLU(),
            nn.Conv1d(c, c, 3),
            nn.ReLU(),
            nn.Conv1d(c, c, 3),
            nn.ReLU(),
            nn.MaxPool1d(3),
        )
        flat = c * conv_output_length(config.max_length)
        self.classifier = nn.Sequential(
            nn.Linear(flat, config.hidden),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden, config.hidden),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden, config.num_labels),
        )

    def forward(self, char_ids: torch.Tensor) -> torch.Tensor:
        """(batch, max_length) alphabet indices -> (batch, num_labels) logits."""
        one_hot = nn.functional.one_hot(char_ids, len(ALPHABET) + 1)[..., 1:].to(torch.float32)
        features = self.features(one_hot.transpose(1, 2))
        logits: torch.Tensor = self.classifier(features.flatten(1))
        return logits


def pad_chars(batch: Sequence[Sequence[int]], max_length: int) -> torch.Tensor:
    """The CNN's fully connected layers need a fixed width, so every row pads to ``max_length``."""
    out = np.zeros((len(batch), max_length), dtype=np.int64)
    for row, ids in enumerate(batch):
        out[row, : len(ids)] = ids
    return torch.from_numpy(out)


def save_charcnn(model: CharCNN, directory: Path) -> None:
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(directory / FP32_FILE))
    (directory / "charcnn_config.json").write_text(json.dumps(asdict(model.config), indent=2) + "\n")


def load_charcnn(directory: Path) -> CharCNN:
    from safetensors.torch import load_file

    config = CharCNNConfig(**json.loads((directory / "charcnn_config.json").read_text()))
    model = CharCNN(config)
    model.load_state_dict(load_file(str(directory / FP32_FILE)))
    return model.eval()


class CharCNNScorer(BatchedScorer):
    """Every text occupies ``max_length`` character slots, so token counts are that constant.

    Runs where the settings say: fp32, or bf16 autocast, on CPU or CUDA. Before, it ran fp32 on
    the CPU whatever MODEL_DEVICE and MODEL_VARIANT asked for, and reported that it did.
    """

    VARIANTS = frozenset({"fp32", "bf16"})

    def __init__(
        self,
        model: CharCNN,
        card: ModelCard,
        device: str = "cpu",
        variant: str = "fp32",
        *,
        max_batch_size: int = 64,
        **_: Any,
    ) -> None:
        if variant not in self.VARIANTS:
            raise ArtifactError(f"variant {variant} is not available for the char-CNN (it runs fp32 or bf16)")
        length = model.config.max_length
        super().__init__(card, length, max_batch_size, max(length * max_batch_size, length))
        self.device = device
        self.variant = variant
        self.model = model.eval().to(device)

    @classmethod
    def from_artifact(
        cls, directory: Path, card: ModelCard, device: str, variant: str, threads: int | None, **limits: int
    ) -> CharCNNScorer:
        if threads:
            torch.set_num_threads(threads)
        return cls(load_charcnn(Path(directory)), card, device, variant, **limits)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return encode_chars(texts, self.max_length)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [self.max_length] * len(texts)

    def forward(self, batch: list[list[int]]) -> npt.NDArray[np.float32]:
        bf16 = self.variant == "bf16"
        with torch.inference_mode(), torch.autocast(self.device, dtype=torch.bfloat16, enabled=bf16):
            logits = self.model(pad_chars(batch, self.max_length).to(self.device))
        result: npt.NDArray[np.float32] = logits.float().cpu().numpy()
        return result
