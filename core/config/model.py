"""Model settings (prefix ``MODEL_``): which artifact to load and how to run it."""

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

from core.config.base import cached, settings_config


class ModelSettings(BaseSettings):
    model_config = settings_config("MODEL_")

    path: Path | None = Field(
        default=None, description="Model artifact directory. Unset: the default model shipped in model/artifacts."
    )

    @field_validator("path", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        """``MODEL_PATH=`` (a compose variable left empty) means the shipped model, not the working directory."""
        if isinstance(value, str | Path) and not str(value).strip():
            return None
        if isinstance(value, str | Path):
            return Path(value).expanduser()
        return value

    device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description="Where inference runs.")
    variant: Literal["auto", "fp32", "bf16", "int8", "onnx-int8", "cuda-int8", "cuda-fp8"] = Field(
        default="auto",
        description=(
            "Numeric variant; auto = CUDA bf16, else CPU ONNX int8 when the artifact has it, else bf16 autocast"
            " on AMX/AVX-512-BF16 CPUs, else fp32. cuda-int8 (weight-only) and cuda-fp8 use torchao on a GPU."
        ),
    )
    num_threads: int = Field(
        default=0,
        ge=0,
        description=(
            "CPU threads for inference (0: torch's default for fp32/bf16; for int8, one single-threaded "
            "pass per CPU the process may use)."
        ),
    )
    cpu_spin: bool = Field(
        default=False,
        description=(
            "Let ONNX Runtime's threads busy-wait between calls: faster for the model alone, slower for a "
            "worker that shares its cores with the broker client and the database."
        ),
    )
    max_length: int = Field(default=256, ge=8, description="Tokens kept per review (longer text is truncated).")
    max_batch_size: int = Field(default=64, ge=1, description="Most reviews in one forward pass.")
    max_batch_tokens: int | None = Field(
        default=None,
        ge=64,
        description=(
            "Padded-token budget of one forward pass. Unset: 1024 on CPU (small length-sorted passes: "
            "1.5x the reviews/s of 8192 for int8 and bf16 here), 16384 on CUDA."
        ),
    )


@cached
def get_model_settings() -> ModelSettings:
    return ModelSettings()
