"""llama.cpp through llama-cpp-python (``pip install 'parley[llamacpp]'``): the fastest CPU engine.

The prompt is rendered by Parley with the HF tokenizer's chat template and passed as text to
``create_completion``; llama.cpp's own chat handlers are not used, so the model sees byte-for-byte the
prompt the torch engine sees (a test checks that both tokenize it to the same ids). With ``prefix_cache`` the
engine keeps the framing and each KB article's opening prefilled (:mod:`.llamacpp_prefix`), as the torch
engine does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from serving.engines.base import CancelToken, Engine, GenerationStats, SamplingParams
from serving.engines.errors import EngineError, EngineUnavailableError
from serving.engines.llamacpp_prefix import LlamaPrefixStore
from serving.engines.prefix_caching import PrefixCaching

INSTALL_HINT = "pip install 'parley[llamacpp]'  (builds llama-cpp-python from source, ~6 min)"


def llama_cpp_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


def find_gguf(artifact: str | Path, gguf_type: str = "q8_0") -> Path:
    """A ``.gguf`` path as given, or ``model-<type>.gguf`` inside a ``parley quantize`` output folder."""
    from serving.quantize.export import gguf_name

    path = Path(artifact)
    if path.is_file():
        return path
    candidate = path / gguf_name(gguf_type)
    if candidate.is_file():
        return candidate
    found = sorted(path.glob("*.gguf")) if path.is_dir() else []
    if len(found) == 1:
        return found[0]
    raise EngineError(f"no GGUF file at {artifact} (looked for {candidate.name}); run parley quantize first")


def find_base_and_lora(artifact: str | Path, gguf_type: str) -> tuple[Path, str]:
    """``(base-<type>.gguf, adapter-lora.gguf)`` inside a ``parley quantize`` output folder."""
    from serving.quantize.export import LORA_GGUF, base_gguf_name

    folder = Path(artifact)
    base, lora = folder / base_gguf_name(gguf_type), folder / LORA_GGUF
    if not (base.is_file() and lora.is_file()):
        raise EngineError(f"no {base.name} + {lora.name} in {artifact}; run parley quantize with an adapter and "
                          f"--gguf-types {gguf_type.lower()}")
    return base, str(lora)


def tokenizer_for_gguf(path: Path, model: str | None = None):
    """The HF tokenizer that renders prompts: saved beside the GGUF, else the model's, else read from the GGUF."""
    from transformers import AutoTokenizer

    from groundwork.models import load_tokenizer

    if (path.parent / "tokenizer_config.json").is_file():
        return AutoTokenizer.from_pretrained(str(path.parent))
    if model:
        return load_tokenizer(model)

    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


class LlamaCppEngine(PrefixCaching, Engine):
    """A GGUF file run by llama.cpp."""

    kind = "llamacpp"

    def __init__(self, gguf_path: str | Path, tokenizer=None, n_ctx: int = 2048, threads: int | None = None,
                 system_prompt: str | None = None, seed: int = 0, prefix_cache: bool = True,
                 **llama_kwargs: Any) -> None:
        if not llama_cpp_available():
            raise EngineUnavailableError(f"the llamacpp engine needs llama-cpp-python: {INSTALL_HINT}")
        from llama_cpp import Llama

        path = Path(gguf_path)
        if not path.is_file():
            raise EngineError(f"GGUF file not found: {gguf_path}")
        super().__init__(tokenizer if tokenizer is not None else tokenizer_for_gguf(path), system_prompt)
        self.path = path
        lora = llama_kwargs.get("lora_path")
        self.description = f"llamacpp:{path.name}" + (f"+{Path(lora).name}" if lora else "")
        self.llm = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                         seed=seed, verbose=False, **llama_kwargs)
        self._end_token_ids: list[int] | None = None
        self._init_prefix_caching(prefix_cache)

    def prompt_ids(self, text: str) -> list[int]:
        return self.tokenize(text)

    def _empty_prefix_store(self) -> LlamaPrefixStore:
        return LlamaPrefixStore(self.llm)

    def warm_up(self) -> None:
        """Prefill the framing and the KB passage openings before the first request (prefix cache)."""
        if self.use_prefix_cache:
            with self._generate_lock:
                self._prefix_cache()

    def tokenize(self, text: str) -> list[int]:
        """llama.cpp's tokenization of a rendered prompt (as ``create_completion`` does it)."""
        return self.llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)

    def _token_stream(self, prompt: str, params: SamplingParams, cancel: CancelToken,
                      stats: GenerationStats) -> Iterator[str]:
        ids = self.tokenize(prompt)
        stats.prompt_tokens = len(ids)
        if stats.prompt_tokens + params.max_tokens > self.llm.n_ctx():
            raise EngineError(f"prompt ({stats.prompt_tokens} tokens) + max_tokens exceeds n_ctx {self.llm.n_ctx()}")
        with self._generate_lock:
            if self.use_prefix_cache:
                self._prefix_cache().prepare(ids)
            yield from self._completion(ids, params, cancel, stats)

    def _completion(self, ids: list[int], params: SamplingParams, cancel: CancelToken,
                    stats: GenerationStats) -> Iterator[str]:
        greedy = params.temperature <= 0
        chunks = self.llm.create_completion(
            ids, max_tokens=params.max_tokens, stream=True,
            temperature=0.0 if greedy else params.temperature, top_p=1.0 if greedy else params.top_p,
            top_k=0, min_p=0.0, repeat_penalty=1.0, seed=params.seed,
            logit_bias={i: float("-inf") for i in self._end_tokens()} if params.ignore_eos else None,
        )
        try:
            for chunk in chunks:
                choice = chunk["choices"][0]
                if choice.get("finish_reason"):
                    stats.finish_reason = "stop" if choice["finish_reason"] == "stop" else "length"
                    if not choice["text"]:
                        break  # the closing chunk carries no token
                stats.completion_tokens += 1
                yield choice["text"]
                if cancel.is_set():
                    break
        finally:
            chunks.close()

    def _end_tokens(self) -> list[int]:
        """Every id llama.cpp ends a generation on (end-of-generation tokens), looked up once."""
        if self._end_token_ids is None:
            import llama_cpp

            vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
            self._end_token_ids = [i for i in range(self.llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, i)]
        return self._end_token_ids

    def close(self) -> None:
        super().close()
        if getattr(self, "llm", None) is not None:
            self.llm.close()
            self.llm = None
