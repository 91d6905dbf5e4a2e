"""The transformers engine: fp32/bf16 (base + adapter, merged) or the int8 artifact, streamed from one long-lived
worker thread (:class:`TorchWorker`) that runs all of the engine's torch work."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import Any

from groundwork.chat_format import last_user_text, render_prompt
from serving.engines.base import CancelToken, Engine, GenerationStats, SamplingParams
from serving.engines.errors import EngineError
from serving.engines.prefix_cache import PrefixKVCache, common_prefix_length
from serving.engines.prefix_caching import PrefixCaching


@dataclass(frozen=True)
class PreparedPrompt:
    """A rendered prompt and its opening (the text before the last user message), which the prefix cache keeps."""

    text: str
    opening: str = ""


class TorchWorker:
    """One long-lived thread that runs every prefill and decode of an engine, at ``threads`` torch threads.

    Why: libgomp (torch's OpenMP) gives each OS thread that runs a parallel op its own team of threads, kept
    until that thread exits. With more team threads than cores (a fresh generation thread per request, as
    before, beside the team of the thread that loaded the model and scores the guard) libgomp stops spinning
    and sleeps and wakes its threads around every op: on 2 cores a 230-token int8 prefill took 240 ms instead of
    140 ms. One thread for the engine's whole life, with the rest of the process at one torch thread
    (:func:`serving.server.build_service`), keeps a single team. The constructing thread's count is left as it was.
    """

    def __init__(self, threads: int | None = None, name: str = "parley-torch") -> None:
        import torch

        caller = torch.get_num_threads()
        self.threads = count = threads or caller

        def start() -> None:  # no reference to self: a dropped worker's thread (and its team) can go
            torch.get_num_threads()  # torch's lazy per-thread setup first (it would apply the process default later)
            torch.set_num_threads(count)

        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name, initializer=start)
        self._ident = self.submit(threading.get_ident).result()  # started now
        # torch.set_num_threads is also the count threads started later begin with: put the caller's back.
        torch.set_num_threads(caller)

    def submit(self, fn: Callable[[], Any]) -> Future:
        """Queue ``fn`` behind the work already queued; its result or exception comes back in the future."""
        return self._pool.submit(fn)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the worker and wait for it (directly when already on the worker)."""
        return fn() if threading.get_ident() == self._ident else self.submit(fn).result()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _finish(job: Future) -> None:
    """Wait for a job the consumer stopped reading from (it has been told to stop); a queued one never runs."""
    if not job.cancel():
        wait([job])


def _streamer_class():
    from transformers import TextIteratorStreamer

    class CountingStreamer(TextIteratorStreamer):
        """TextIteratorStreamer that also counts generated tokens (for tokens/s)."""

        def __init__(self, tokenizer, stats: GenerationStats, **kwargs: Any) -> None:
            super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True, **kwargs)
            self.stats = stats
            self._seen_prompt = False

        def put(self, value) -> None:
            if self._seen_prompt:
                self.stats.completion_tokens += int(value.numel())
            else:
                self._seen_prompt = True
                self.stats.prompt_tokens = int(value.shape[-1])
            super().put(value)

    return CountingStreamer


def _cancel_criterion(cancel: CancelToken):
    import torch
    from transformers import StoppingCriteria

    class Cancelled(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs) -> torch.BoolTensor:
            return torch.full((input_ids.shape[0],), cancel.is_set(), dtype=torch.bool)

    return Cancelled()


class TorchEngine(PrefixCaching, Engine):
    """A transformers causal LM; one request at a time (generation holds the model), all of it on :attr:`worker`.

    ``threads`` is the worker's torch thread count (default: the constructing thread's).
    """

    kind = "torch"

    def __init__(self, model, tokenizer, threads: int | None = None, system_prompt: str | None = None,
                 description: str = "", compile: bool = False, prefix_cache: bool = True) -> None:
        super().__init__(tokenizer, system_prompt)
        self.worker = TorchWorker(threads)
        self.model = model
        self.description = description + (" compiled" if compile else "")
        self.decoder = None
        if compile:
            from serving.engines.compiled_decoding import CompiledDecoder

            self.decoder = CompiledDecoder(model)
        self._init_prefix_caching(prefix_cache and not compile)  # the compiled step owns a static cache
        eos = {tokenizer.eos_token_id}
        config_eos = getattr(model.generation_config, "eos_token_id", None)
        eos.update(config_eos if isinstance(config_eos, list) else [config_eos])
        self.eos_token_ids = sorted(i for i in eos if i is not None)

    @classmethod
    def from_pretrained(cls, model: str | None = None, adapter: str | None = None, artifact: str | None = None,
                        dtype: str = "float32", threads: int | None = None, system_prompt: str | None = None,
                        merge: bool = True, fuse_int8: bool = True, compile: bool = False,
                        prefix_cache: bool = True) -> TorchEngine:
        """``artifact`` is an int8 folder (or a ``parley quantize`` output holding ``int8/``); else base + adapter.

        ``fuse_int8=False`` keeps one int8 GEMM per original projection (for comparison; same outputs).
        ``compile`` decodes with a static cache and a compiled step (:mod:`.compiled_decoding`); the first
        request (or :meth:`warm_up`) pays the compilation. ``prefix_cache`` (eager decoding) prefills the prompt
        framing shared by every request once (:mod:`.prefix_cache`).
        """
        from groundwork.models import load_causal_lm, load_tokenizer
        from serving.quantize import int8_ops
        from serving.quantize.export import INT8_DIR
        from serving.quantize.int8 import is_int8_artifact, load_int8

        if artifact:
            folder = Path(artifact)
            if not is_int8_artifact(folder) and is_int8_artifact(folder / INT8_DIR):
                folder = folder / INT8_DIR
            if not is_int8_artifact(folder):
                raise EngineError(f"{artifact} is not an int8 artifact (run parley quantize --formats int8)")
            tokenizer = load_tokenizer(str(folder))
            int8_ops.load_native_kernels()  # C++ kernels for the int8 GEMMs when a compiler is here (built once)
            return cls(load_int8(folder, fuse=fuse_int8), tokenizer, threads, system_prompt,
                       description=f"int8{'' if fuse_int8 else ' (unfused)'}:{folder}", compile=compile,
                       prefix_cache=prefix_cache)
        if not model:
            raise EngineError("the torch engine needs a model (or an int8 artifact)")
        tokenizer = load_tokenizer(model)
        lm = load_causal_lm(model, dtype, adapter=adapter)
        if adapter and merge:
            lm = lm.merge_and_unload()  # no per-token LoRA overhead while serving
        lm.eval()
        return cls(lm, tokenizer, threads, system_prompt, description=f"{dtype}:{model}+{adapter or 'no adapter'}",
                   compile=compile, prefix_cache=prefix_cache)

    def warm_up(self) -> None:
        """Prepare before the first request: prefill the prompt framing (prefix cache) and, with ``compile``,
        compile for two prompt lengths in different cache buckets, so a shape the compiled step has not seen
        cannot surprise a customer."""
        if self.use_prefix_cache:
            def prefill() -> None:
                with self._generate_lock:
                    self._prefix_cache()

            self.worker.call(prefill)
        if self.decoder is None:
            return
        for words in (1, 200):
            self.generate([{"role": "user", "content": " ".join(["hello"] * words)}], max_tokens=3)

    def _empty_prefix_store(self) -> PrefixKVCache:
        return PrefixKVCache(self.model)

    def prepare(self, messages: Any, context: str | Sequence[str] | None = None) -> PreparedPrompt:
        """The rendered prompt, and (with the prefix cache) the text before its last user message."""
        framed = self.messages(messages, context)
        text = render_prompt(self.tokenizer, framed)
        last_user = last_user_text(framed)
        cut = text.rfind(last_user) if self.use_prefix_cache and last_user else -1
        return PreparedPrompt(text, text[:cut] if cut > 0 else "")

    def _cache_kwargs(self, input_ids, opening: str) -> tuple[dict[str, Any], int]:
        """(the ``cache`` for ``generate``, how many leading ids of this request to keep afterwards).

        The cache handed over is a copy of the longest held opening of ``input_ids`` or a fresh one; either way
        ``generate`` fills it with this prompt, so its opening can be kept afterwards at no extra cost.
        """
        if not self.use_prefix_cache:
            return {}, 0
        from transformers import DynamicCache

        ids = input_ids[0].tolist()
        hit = self._prefix_cache().lookup(ids)
        cache = hit[0] if hit else DynamicCache(config=self.model.config)
        keep = common_prefix_length(ids, self.prompt_ids(opening)) if opening else 0
        return {"cache": cache}, keep

    def _generate_kwargs(self, params: SamplingParams) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"max_new_tokens": params.max_tokens, "eos_token_id": self.eos_token_ids,
                                  "pad_token_id": self.tokenizer.pad_token_id}
        if params.temperature > 0:
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=None)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if params.ignore_eos:
            kwargs["min_new_tokens"] = params.max_tokens  # masks every EOS id until max_tokens
        return kwargs

    def _token_stream(self, prompt: PreparedPrompt, params: SamplingParams, cancel: CancelToken,
                      stats: GenerationStats) -> Iterator[str]:
        import torch
        from transformers import StoppingCriteriaList

        encoded = self.tokenizer(prompt.text, return_tensors="pt", add_special_tokens=False)
        if self.decoder is not None:
            yield from self._compiled_stream(encoded["input_ids"], params, cancel, stats)
            return
        streamer = _streamer_class()(self.tokenizer, stats, timeout=0.05)
        kwargs = self._generate_kwargs(params)
        errors: list[BaseException] = []
        output: list[Any] = []

        def run() -> None:
            try:
                if cancel.is_set():  # the caller left while this waited behind another request
                    streamer.end()
                    return
                with self._generate_lock, torch.inference_mode():
                    if params.seed is not None:
                        torch.manual_seed(params.seed)
                    cache_kwargs, keep = self._cache_kwargs(encoded["input_ids"], prompt.opening)
                    output.append(self.model.generate(**encoded, **kwargs, **cache_kwargs, streamer=streamer,
                                                      stopping_criteria=StoppingCriteriaList(
                                                          [_cancel_criterion(cancel)])))
                    if keep:
                        self.prefix_cache.put(encoded["input_ids"][0, :keep].tolist(),
                                              cache_kwargs["cache"])
            except BaseException as exc:  # surfaced in the consumer thread
                errors.append(exc)
                streamer.end()

        job = self.worker.submit(run)
        try:
            while True:
                try:
                    text = next(streamer)
                except Empty:
                    if job.done() and streamer.text_queue.empty():
                        break
                    continue
                except StopIteration:
                    break
                yield text
        finally:
            cancel.set()
            _finish(job)
        if errors:
            raise EngineError(f"generation failed: {errors[0]}") from errors[0]
        if output:
            last = int(output[0][0, -1])
            stats.finish_reason = "stop" if last in self.eos_token_ids else "length"

    def _compiled_stream(self, input_ids, params: SamplingParams, cancel: CancelToken,
                         stats: GenerationStats) -> Iterator[str]:
        """Text per token from :class:`CompiledDecoder` (run on the worker, which also compiled it), detokenized
        incrementally here (held back while the text ends in an incomplete UTF-8 sequence)."""
        import torch

        stats.prompt_tokens = int(input_ids.shape[1])
        generator = torch.Generator().manual_seed(params.seed) if params.seed is not None else None
        eos = set() if params.ignore_eos else set(self.eos_token_ids)
        suppress = set(self.eos_token_ids) if params.ignore_eos else set()
        tokens: SimpleQueue = SimpleQueue()
        done = object()

        def run() -> None:
            try:
                with self._generate_lock:
                    if cancel.is_set():
                        return
                    for token in self.decoder.tokens(input_ids, params.max_tokens, eos, params.temperature,
                                                     params.top_p, generator, suppress):
                        tokens.put(token)
                        if cancel.is_set():
                            break
            finally:
                tokens.put(done)

        job = self.worker.submit(run)
        ids: list[int] = []
        emitted = ""
        try:
            while (token := tokens.get()) is not done:
                ids.append(token)
                stats.completion_tokens = len(ids)
                if token in eos:
                    stats.finish_reason = "stop"
                    break
                text = self.tokenizer.decode(ids, skip_special_tokens=True)
                if text.endswith("\ufffd"):
                    yield ""
                    continue
                yield text[len(emitted):]
                emitted = text
        finally:
            cancel.set()
            _finish(job)
        if job.exception() is not None:
            raise EngineError(f"generation failed: {job.exception()}") from job.exception()
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        if len(text) > len(emitted):
            yield text[len(emitted):]

    def close(self) -> None:
        super().close()
        self.worker.close()
        self.model = None
