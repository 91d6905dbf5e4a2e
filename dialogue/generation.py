"""Batched generation with a transformers policy (used by ``parley generate``, chat and evaluation)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from groundwork.chat_format import build_messages, render_prompt
from groundwork.data_loading import BadRows, iter_lines
from groundwork.errors import DataError
from groundwork.models import load_causal_lm, load_tokenizer


@dataclass
class GenerationParams:
    """Sampling settings; temperature 0 means greedy."""

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0

    def to_kwargs(self, tokenizer) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "pad_token_id": tokenizer.pad_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        }
        if self.temperature > 0:
            kwargs.update(do_sample=True, temperature=self.temperature, top_p=self.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return kwargs


class Generator:
    """A loaded policy (base + optional adapter) that answers conversations in batches."""

    def __init__(self, model: str, adapter: str | None = None, dtype: str = "float32",
                 system_prompt: str | None = None):
        self.model_name = model
        self.adapter = adapter
        self.system_prompt = system_prompt
        self.tokenizer = load_tokenizer(model, padding_side="left")
        self.model = load_causal_lm(model, dtype, adapter=adapter)

    def prompts(self, rows: Sequence[dict[str, Any]]) -> list[str]:
        """Render each row (``messages`` or ``prompt``, optional ``context``) with the chat template."""
        return render_rows(self.tokenizer, rows, self.system_prompt)

    def generate(self, rows: Sequence[dict[str, Any]], params: GenerationParams | None = None,
                 batch_size: int = 8, progress: bool = False) -> list[str]:
        """Return one response per row, in order."""
        return generate_batch(self.model, self.tokenizer, self.prompts(rows), params, batch_size, progress)


def render_rows(tokenizer, rows: Sequence[dict[str, Any]], system_prompt: str | None = None) -> list[str]:
    """Chat-template text for rows with ``messages`` (or ``prompt``) and an optional ``context``."""
    return [render_prompt(tokenizer, build_messages(row.get("messages", row.get("prompt")), row.get("context"),
                                                    system_prompt)) for row in rows]


def generate_batch(model, tokenizer, prompts: Sequence[str], params: GenerationParams | None = None,
                   batch_size: int = 8, progress: bool = False) -> list[str]:
    """Generate for rendered prompts in length-sorted batches (less padding); output order = input order."""
    import torch

    params = params or GenerationParams()
    padding_side, tokenizer.padding_side = tokenizer.padding_side, "left"
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    responses: list[str] = [""] * len(prompts)
    try:
        for start in tqdm(range(0, len(order), batch_size), desc="generate", disable=not progress, unit="batch"):
            index = order[start:start + batch_size]
            encoded = tokenizer([prompts[i] for i in index], return_tensors="pt", padding=True,
                                add_special_tokens=False).to(model.device)
            with torch.inference_mode():
                output = model.generate(**encoded, **params.to_kwargs(tokenizer))
            new_tokens = output[:, encoded["input_ids"].shape[1]:]
            for i, tokens in zip(index, new_tokens, strict=True):
                responses[i] = tokenizer.decode(tokens, skip_special_tokens=True).strip()
    finally:
        tokenizer.padding_side = padding_side
    return responses


def read_generation_input(path: str | Path, on_bad_row: str = "skip") -> tuple[list[dict], BadRows]:
    """Rows of a ``parley generate`` input file; each needs ``messages`` or ``prompt``."""
    bad = BadRows(on_bad_row)
    rows = []
    path = Path(path)
    for number, line in iter_lines(path, bad):
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            bad.add(where, f"invalid JSON ({exc.msg})")
            continue
        try:
            if not isinstance(row, dict):
                raise ValueError("expected a JSON object")
            if "messages" not in row and "prompt" not in row:
                raise ValueError("needs 'messages' or 'prompt'")
            build_messages(row.get("messages", row.get("prompt")), row.get("context"))
            if row.get("context") is not None and not isinstance(row["context"], str):
                raise ValueError("'context' must be a string")
        except ValueError as exc:
            bad.add(where, str(exc))
            continue
        rows.append(row)
    return rows, bad


def generate_file(generator: Generator, input_path: str | Path, output_path: str | Path,
                  params: GenerationParams, batch_size: int = 8, on_bad_row: str = "skip") -> dict[str, Any]:
    """The ``parley generate`` contract: every valid input row is written back with ``"response"`` added."""
    rows, bad = read_generation_input(input_path, on_bad_row)
    bad.print_summary(str(input_path))
    if not rows:
        raise DataError(f"{input_path}: no usable rows ({bad.summary()})")
    started = time.time()
    responses = generator.generate(rows, params, batch_size=batch_size, progress=True)
    elapsed = time.time() - started
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with open(output_path, "w", encoding="utf-8") as handle:
        for row, response in zip(rows, responses, strict=True):
            handle.write(json.dumps({**row, "response": response}, ensure_ascii=False) + "\n")
    return {"rows": len(rows), "skipped": len(bad.problems), "seconds": round(elapsed, 2)}


def chat_loop(generator: Generator, params: GenerationParams, lines: Iterable[str], write=print,
              context: str | None = None) -> list[dict[str, str]]:
    """A minimal multi-turn chat over ``lines`` (stdin in the CLI); ``/reset`` clears, ``/quit`` ends."""
    history: list[dict[str, str]] = []
    for line in lines:
        text = line.strip()
        if not text:
            continue
        if text in ("/quit", "/exit"):
            break
        if text == "/reset":
            history = []
            write("(conversation cleared)")
            continue
        history.append({"role": "user", "content": text})
        reply = generator.generate([{"messages": history, "context": context}], params, batch_size=1)[0]
        history.append({"role": "assistant", "content": reply})
        write(f"assistant: {reply}")
    return history
