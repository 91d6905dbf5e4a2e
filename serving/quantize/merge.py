"""Fold a LoRA adapter into its base model so every export starts from plain dense weights."""

from __future__ import annotations

import hashlib
from pathlib import Path

from groundwork.models import load_causal_lm, load_tokenizer
from serving.quantize.errors import QuantizeError

ADAPTER_WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")


def adapter_weights_path(adapter: str | Path) -> Path:
    """The adapter's weight file; a clear error when the folder is not a PEFT adapter."""
    folder = Path(adapter).expanduser()
    if not (folder / "adapter_config.json").is_file():
        raise QuantizeError(f"adapter directory {adapter} not found or has no adapter_config.json")
    for name in ADAPTER_WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    raise QuantizeError(f"adapter directory {adapter} has no {' or '.join(ADAPTER_WEIGHT_FILES)}")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def adapter_sha256(adapter: str | Path) -> str:
    """Identity of the adapter that went into an export (hash of its weight file)."""
    return sha256_file(adapter_weights_path(adapter))


def load_merged(model: str, adapter: str | None = None):
    """Return ``(model, tokenizer)`` in fp32 with the adapter merged (``merge_and_unload``), ready to quantize."""
    if adapter is not None:
        adapter_weights_path(adapter)  # fail before the (slow) base load
    tokenizer = load_tokenizer(model, padding_side="left")
    lm = load_causal_lm(model, "float32", adapter=adapter)
    if adapter is not None:
        lm = lm.merge_and_unload()
    lm.eval()
    return lm, tokenizer
