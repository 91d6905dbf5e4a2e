"""Training precision: float32 weights with bfloat16 matrix products where the hardware multiplies bf16 natively.

On CPUs with AMX or AVX-512 BF16 a bf16 matrix product runs several times faster than float32 (the development
machine: 1.5 vs 0.23 TFLOP/s for a 1600x576x1536 product on 2 cores), so mixed precision (torch's CPU autocast,
the same thing ``TrainingArguments(bf16=True)`` turns on) cuts training time; weights, gradients and optimizer
state stay float32. Elsewhere bf16 is emulated and slower, and ``auto`` keeps float32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal, get_args

import torch

MixedPrecision = Literal["auto", "bf16", "fp32"]
MIXED_PRECISION_MODES = get_args(MixedPrecision)


def native_bf16_cpu() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX-512 BF16 or AMX); elsewhere bf16 is emulated and slower."""
    checks = (getattr(torch.cpu, "_is_amx_tile_supported", None), getattr(torch.cpu, "_is_avx512_bf16_supported", None))
    return any(check is not None and check() for check in checks)


def trainer_device() -> str:
    """Where the TRL / transformers trainers put the model: CUDA when present, else the CPU."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def native_bf16(device_type: str | None = None) -> bool:
    """Whether ``device_type`` (default: :func:`trainer_device`) multiplies bfloat16 natively."""
    if (device_type or trainer_device()) == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return native_bf16_cpu()


def train_in_bf16(mode: str, device_type: str | None = None) -> bool:
    """Whether to train on ``device_type`` with bf16 mixed precision: ``auto`` where bf16 is native, ``bf16``
    always, ``fp32`` never."""
    if mode not in MIXED_PRECISION_MODES:
        raise ValueError(f"unknown mixed precision {mode!r}: use one of {', '.join(MIXED_PRECISION_MODES)}")
    return mode == "bf16" or (mode == "auto" and native_bf16(device_type))


def trainer_precision(mode: str, weights_dtype: str = "float32") -> dict[str, bool]:
    """``TrainingArguments`` precision keywords for a model whose weights are ``weights_dtype``: ``bf16`` for bf16
    weights, or for float32 ones trained in mixed precision per ``mode``, and ``use_cpu`` where that runs on a CPU
    (transformers refuses bf16 without a GPU unless told it is on the CPU)."""
    bf16 = weights_dtype == "bfloat16" or (weights_dtype == "float32" and train_in_bf16(mode))
    return {"bf16": bf16, "use_cpu": bf16 and trainer_device() == "cpu"}


@contextlib.contextmanager
def autocast(enabled: bool, device_type: str) -> Iterator[None]:
    """bf16 autocast for tensors on ``device_type``; a no-op when off."""
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=enabled):
        yield
