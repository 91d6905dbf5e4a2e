"""Tiny random causal LMs of every architecture in ``groundwork.architectures``, built offline.

The tokenizer is a small byte-level BPE trained with the ``tokenizers`` package on the project's own data,
wrapped in ``PreTrainedTokenizerFast`` with a ChatML template and distinct pad / eos tokens; each model has a
few layers and a 64-wide hidden state, so every stage runs in seconds on a CPU.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARCH_TYPES = ("llama", "qwen2", "qwen3", "mistral", "gemma2", "gemma3_text", "phi3")
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
HIDDEN, LAYERS, HEADS, KV_HEADS, INTERMEDIATE = 64, 2, 4, 2, 128
VOCAB = 768
WEIGHT_STD = 0.3


def _corpus() -> list[str]:
    """Every message and KB text of the shipped support and translation sets (a few hundred kB)."""
    texts = []
    for name in ("support/train.jsonl", "translation/train.jsonl", "kb/articles.jsonl"):
        for line in (ROOT / "data" / name).read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            texts += [m["content"] for m in row.get("messages", [])]
            texts += [row[k] for k in ("context", "text") if isinstance(row.get(k), str)]
    return texts


@lru_cache(maxsize=1)
def _tokenizer_json() -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(_corpus(), trainer)
    return tokenizer.to_str()


def build_tokenizer():
    """The shared tiny tokenizer: byte-level BPE, ChatML template, pad <|endoftext|>, eos <|im_end|>."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(_tokenizer_json()),
                                        eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        additional_special_tokens=["<|im_start|>"])
    tokenizer.chat_template = CHATML
    tokenizer.model_max_length = 1024
    return tokenizer


def tiny_config(model_type: str, vocab_size: int, pad_id: int, eos_id: int):
    from transformers import AutoConfig

    common = dict(vocab_size=vocab_size, hidden_size=HIDDEN, intermediate_size=INTERMEDIATE,
                  num_hidden_layers=LAYERS, num_attention_heads=HEADS, num_key_value_heads=KV_HEADS,
                  max_position_embeddings=1024, pad_token_id=pad_id, eos_token_id=eos_id, bos_token_id=None,
                  tie_word_embeddings=model_type not in ("mistral", "phi3"))
    extra = {
        "qwen2": dict(use_sliding_window=False),
        "qwen3": dict(head_dim=HIDDEN // HEADS, use_sliding_window=False),
        "mistral": dict(sliding_window=None, head_dim=HIDDEN // HEADS),
        # query_pre_attn_scalar = head_dim: llama.cpp scales queries by 1/sqrt(head_dim) for sizes it does not know
        "gemma2": dict(head_dim=HIDDEN // HEADS, query_pre_attn_scalar=HIDDEN // HEADS, sliding_window=512),
        "gemma3_text": dict(head_dim=HIDDEN // HEADS, query_pre_attn_scalar=HIDDEN // HEADS, sliding_window=512),
        "phi3": dict(original_max_position_embeddings=1024, sliding_window=None),
    }.get(model_type, {})
    return AutoConfig.for_model(model_type, **common, **extra)


def build_tiny_model(model_type: str, folder: Path, seed: int = 0) -> Path:
    """Save a tiny random ``model_type`` causal LM and the tiny tokenizer to ``folder``; return it."""
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = build_tokenizer()
    vocab = tokenizer.get_vocab()
    config = tiny_config(model_type, len(tokenizer), vocab["<|endoftext|>"], vocab["<|im_end|>"])
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    # The default init (std 0.02) gives near-tied logits and a greedy loop on one token; wider weights give greedy
    # decoding clear winners, and perturbed norms make a wrongly stored norm visible. Gemma multiplies looked-up
    # embeddings by sqrt(hidden_size), so its embedding std is divided by that.
    embed_std = WEIGHT_STD / (HIDDEN ** 0.5 if model_type.startswith("gemma") else 1.0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() > 1:
                param.normal_(0.0, embed_std if "embed" in name else WEIGHT_STD)
            elif "norm" in name:
                param.add_(torch.randn_like(param) * 0.1)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
