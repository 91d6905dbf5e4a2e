"""A Hugging Face tokenizer written as GGUF tokenizer metadata (no base GGUF needed).

llama.cpp's byte-level BPE ("gpt2" tokenizer model) reads: the token strings in id order (as the HF
vocabulary spells them, byte-level encoded), a type per token (normal, control for special tokens,
user-defined for other added tokens, unused for ids the tokenizer does not fill up to the model's
vocabulary size), the merges, the special token ids, whether BOS/EOS are added, the chat template, and
``tokenizer.ggml.pre``, the name of llama.cpp's built-in pre-tokenizer regex that matches the HF
pre-tokenizer. The merges, special ids and chat template come from ``gguf.vocab.SpecialVocab`` over the
saved tokenizer; the pre-tokenizer is recognized from ``tokenizer.json``'s structure.

SentencePiece-style tokenizers (byte-fallback BPE or Unigram: Llama 2, Mistral, Gemma, Phi-3 originals)
are not written here; pass a base GGUF with that tokenizer instead.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from serving.quantize.errors import UnsupportedArchitectureError

# Split regexes of public byte-level BPE tokenizers -> llama.cpp's pre-tokenizer names for the same split.
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
               r"|\s+(?!\S)|\s+")
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
SPLIT_PRE = {QWEN2_SPLIT: "qwen2", LLAMA3_SPLIT: "llama-bpe"}


class UnsupportedTokenizerError(UnsupportedArchitectureError):
    """The tokenizer cannot be described to llama.cpp from the HF files alone."""


def _split_regex(step: dict[str, Any]) -> str | None:
    pattern = step.get("pattern") or {}
    return pattern.get("Regex") if isinstance(pattern, dict) else None


def pre_tokenizer_name(tokenizer_json: dict[str, Any]) -> str:
    """llama.cpp's ``tokenizer.ggml.pre`` for a byte-level BPE ``tokenizer.json`` (an error if none matches)."""
    pre = tokenizer_json.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    kinds = [step.get("type") for step in steps]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True) and not steps[0].get("add_prefix_space", False):
        return "gpt-2"  # GPT-2's own split regex
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits") and steps[1].get("use_regex", True):
        return "smollm"  # every digit alone, then GPT-2's regex
    if kinds == ["Split", "ByteLevel"] and not steps[1].get("use_regex", True):
        name = SPLIT_PRE.get(_split_regex(steps[0]) or "")
        if name:
            return name
    raise UnsupportedTokenizerError(f"the tokenizer's pre-tokenizer ({kinds}) has no llama.cpp equivalent known here; "
                                    "set quantize.base_gguf to a GGUF with this tokenizer")


def _adds(tokenizer, token_id: int | None, first: bool) -> bool:
    if token_id is None:
        return False
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    return bool(ids) and ids[0 if first else -1] == token_id


def check_hf_tokenizer(tokenizer, vocab_size: int) -> tuple[str, dict[int, str]]:
    """``(llama.cpp pre-tokenizer name, {id: token})``; :class:`UnsupportedTokenizerError` when the tokenizer cannot
    be written from its HF files."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise UnsupportedTokenizerError("only fast (tokenizer.json) tokenizers can be written to GGUF; "
                                        "set quantize.base_gguf")
    spec = json.loads(backend.to_str())
    model = spec.get("model") or {}
    byte_level = (spec.get("decoder") or {}).get("type") == "ByteLevel"
    if model.get("type") != "BPE" or model.get("byte_fallback") or not byte_level:
        raise UnsupportedTokenizerError(f"only byte-level BPE tokenizers are written to GGUF from the HF files (this "
                                        f"one: {model.get('type')}, byte_fallback={model.get('byte_fallback')}); "
                                        "set quantize.base_gguf to a GGUF with this tokenizer")
    pre = pre_tokenizer_name(spec)
    by_id = {i: token for token, i in tokenizer.get_vocab().items()}
    if max(by_id) >= vocab_size:
        raise UnsupportedTokenizerError(f"the tokenizer has ids up to {max(by_id)} but the model's vocabulary is "
                                        f"{vocab_size}")
    return pre, by_id


def write_hf_tokenizer(writer, tokenizer, vocab_size: int) -> dict[str, Any]:
    """Add ``tokenizer``'s GGUF tokenizer metadata to ``writer`` (a ``gguf.GGUFWriter``); returns a summary."""
    import gguf

    pre, by_id = check_hf_tokenizer(tokenizer, vocab_size)
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    with tempfile.TemporaryDirectory(prefix="parley-tokenizer-") as folder:
        tokenizer.save_pretrained(folder)
        special = gguf.SpecialVocab(Path(folder), load_merges=True, n_vocab=vocab_size)
    if not special.merges:
        raise UnsupportedTokenizerError("the tokenizer has no BPE merges to write")
    special.add_special_token["bos"] = _adds(tokenizer, tokenizer.bos_token_id, first=True)
    special.add_special_token["eos"] = _adds(tokenizer, tokenizer.eos_token_id, first=False)
    for kind in ("bos", "eos", "unk", "pad"):  # what the loaded tokenizer says wins over the files
        token_id = getattr(tokenizer, f"{kind}_token_id", None)
        if token_id is not None and token_id < vocab_size:
            special.special_token_ids[kind] = int(token_id)
    if special.chat_template is None and getattr(tokenizer, "chat_template", None):
        special.chat_template = tokenizer.chat_template
    special.add_to_gguf(writer, quiet=True)
    return {"model": "gpt2", "pre": pre, "tokens": vocab_size, "merges": len(special.merges),
            "chat_template": special.chat_template is not None}


__all__ = ["UnsupportedTokenizerError", "check_hf_tokenizer", "pre_tokenizer_name", "write_hf_tokenizer"]
