"""The one place that turns (conversation, response, context) into what a reward model reads.

Training, held-out evaluation, ``parley reward score`` and the PPO composite all call
:func:`encode_reward_input`, so a reward model never sees one layout in training and another when
scoring. The response comes first and every part has a token budget, so a long KB context or a long
conversation history is cut before the response or the customer's last message ever is.
"""

from __future__ import annotations

from typing import Any

from groundwork.chat_format import normalize_messages
from reward_models.policy_text import context_from_system

# Share of the token budget each part may take before the leftovers go to the next part.
RESPONSE_SHARE = 0.45
LAST_USER_SHARE = 0.25


def _clip(tokenizer, text: str, budget: int, keep: str = "head") -> tuple[str, int]:
    """Cut ``text`` to at most ``budget`` tokens on a token boundary (keep its head or its tail)."""
    text = " ".join(text.split())
    if budget <= 0 or not text:
        return "", 0
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    if len(offsets) <= budget:
        return text, len(offsets)
    if keep == "head":
        return text[: offsets[budget - 1][1]], budget
    return text[offsets[-budget][0]:], budget


def conversation_turns(prompt: Any) -> list[dict[str, str]]:
    """User/assistant turns of a prompt (a string or messages); system messages are dropped."""
    return [m for m in normalize_messages(prompt) if m["role"] != "system"]


def reward_context(prompt: Any, context: str | None) -> str | None:
    """The KB passages a reward input reads: ``context``, or else those inside the system message of messages
    built by :mod:`groundwork.chat_format` (how the server and the policy's prompts carry them)."""
    if context is None and not isinstance(prompt, str):
        systems = [m["content"] for m in normalize_messages(prompt) if m["role"] == "system"]
        context = next((c for c in map(context_from_system, systems) if c), None)
    return context


def format_reward_text(tokenizer, prompt: Any, response: str, context: str | None, max_length: int) -> str:
    """Render one (prompt, response, context) as ``assistant: .. [SEP] user: .. [SEP] context: .. [SEP] earlier: ..``.

    Budgets: the response up to 45% of ``max_length``, the last user turn up to 25% plus what the response
    left, then the KB context, then earlier turns newest first, each cut on a token boundary.
    """
    sep = f" {tokenizer.sep_token} " if tokenizer.sep_token else "\n"
    context = reward_context(prompt, context)
    turns = conversation_turns(prompt)
    last_user = ""
    if turns and turns[-1]["role"] == "user":
        last_user = turns.pop()["content"]
    budget = max_length - 16  # special tokens, separators and the part labels
    response_text, used = _clip(tokenizer, response, int(budget * RESPONSE_SHARE))
    budget -= used
    user_text, used = _clip(tokenizer, last_user, min(budget, int((max_length - 16) * LAST_USER_SHARE)))
    budget -= used
    parts = [f"assistant: {response_text}", f"user: {user_text}"]
    if context:
        context_text, used = _clip(tokenizer, context, budget)
        budget -= used
        parts.append(f"context: {context_text}")
    if turns and budget > 8:
        history = " ".join(f"{m['role']}: {m['content']}" for m in turns)
        history_text, _ = _clip(tokenizer, history, budget, keep="tail")
        parts.append(f"earlier: {history_text}")
    return sep.join(parts)


def encode_reward_input(tokenizer, prompt: Any, response: str, context: str | None, max_length: int) -> list[int]:
    """Token ids of one reward-model input (formatted by :func:`format_reward_text`, truncated as a last resort)."""
    text = format_reward_text(tokenizer, prompt, response, context, max_length)
    return tokenizer(text, truncation=True, max_length=max_length)["input_ids"]
