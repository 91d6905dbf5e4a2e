"""Any OpenAI-compatible server (vLLM, TGI, llama.cpp server, Parley's own API) via the ``openai`` client.

Here the *server* applies the chat template to the messages Parley builds (same system prompt and KB
framing as the local engines); a vLLM or TGI server serving the same HF folder uses the same template,
a llama.cpp server uses the GGUF's ``tokenizer.chat_template``, which ``parley quantize`` copies from the
base file. ``render`` is still available (with a tokenizer) to show what the server should produce.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from serving.engines.base import CancelToken, Engine, GenerationStats, SamplingParams
from serving.engines.errors import EngineError, EngineUnavailableError


class OpenAIEngine(Engine):
    """Chat completions against ``base_url`` (e.g. ``http://127.0.0.1:8000/v1``)."""

    kind = "openai"

    def __init__(self, model: str, base_url: str, api_key: str = "EMPTY", tokenizer=None,
                 system_prompt: str | None = None, timeout: float = 120.0, client=None) -> None:
        super().__init__(tokenizer, system_prompt)
        if client is None:
            try:
                from openai import OpenAI
            except ImportError as exc:
                raise EngineUnavailableError("the openai engine needs: pip install 'parley[openai]'") from exc
            client = OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0)
        self.client = client
        self.model = model
        self.description = f"openai:{model}@{base_url}"

    def prepare(self, messages: Any, context=None) -> list[dict[str, str]]:
        return self.messages(messages, context)

    def _token_stream(self, prompt: list[dict[str, str]], params: SamplingParams, cancel: CancelToken,
                      stats: GenerationStats) -> Iterator[str]:
        from openai import OpenAIError

        extra: dict[str, Any] = {}
        if params.seed is not None:
            extra["seed"] = params.seed
        if params.stop:
            extra["stop"] = list(params.stop)[:4]  # lets the server stop early; the base class still truncates
        if params.ignore_eos:
            extra["extra_body"] = {"ignore_eos": True}  # vLLM and llama.cpp's server honour it
        try:
            response = self.client.chat.completions.create(
                model=self.model, messages=prompt, stream=True, max_tokens=params.max_tokens,
                temperature=params.temperature, top_p=params.top_p, stream_options={"include_usage": True},
                **extra,
            )
        except OpenAIError as exc:
            raise EngineError(f"OpenAI-compatible server at {self.client.base_url} failed: {exc}") from exc
        counted = 0
        try:
            for chunk in response:
                if chunk.usage is not None:
                    stats.prompt_tokens = chunk.usage.prompt_tokens
                    stats.completion_tokens = chunk.usage.completion_tokens
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                if choice.finish_reason:
                    stats.finish_reason = "stop" if choice.finish_reason == "stop" else "length"
                text = choice.delta.content or ""
                if text:
                    counted += 1
                    stats.completion_tokens = max(stats.completion_tokens, counted)
                yield text
                if cancel.is_set():
                    break
        finally:
            response.close()  # drops the HTTP stream, so the server can stop generating
