"""GPU-only variants through torchao, imported lazily so CPU machines never load it.

On CPU, importing torchao logs that its CUDA kernels cannot load; keeping the import inside these
functions means only a process that asked for a GPU variant pays for (and sees) that.
"""

from __future__ import annotations

from typing import Any


def torchao_available() -> bool:
    try:
        import torchao  # noqa: F401
    except ImportError:
        return False
    return True


def quantize_int8_weight_only(model: Any) -> Any:
    """int8 weight-only quantization of the linear layers (bf16 activations) on CUDA."""
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    quantize_(model, Int8WeightOnlyConfig())
    return model


def quantize_fp8(model: Any) -> Any:
    """fp8 dynamic activation + weight quantization (H100-class GPUs)."""
    from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, quantize_

    quantize_(model, Float8DynamicActivationFloat8WeightConfig())
    return model
