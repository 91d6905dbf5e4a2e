"""Turn PPO's policy token rows back into (conversation, response, KB context) text.

The reward models have their own tokenizer, so the composite reward decodes the policy's tokens. The
split between prompt and response is found from the chat template's generation prompt (e.g.
``<|im_start|>assistant\\n``): PPO left-pads every query to one length, so that marker ends at the same
column in every row; if no column is common to all rows, each row uses its own last marker. Role
markers are learned from the template by rendering sentinel messages, so any chat template works, and
the KB context is read back from between ``<kb>`` and ``</kb>`` in the system message.
"""

from __future__ import annotations

import re

import torch

from groundwork.errors import ConfigError

_SENTINEL = "\u2063PARLEY{}\u2063"
# The fenced block starts on its own line; the instructions above it mention "<kb> and </kb>" inline.
_KB = re.compile(r"<kb>\n(.*?)\n</kb>", re.S)
_PASSAGE_NUMBER = re.compile(r"^\[\d+\]\s*", re.M)


def context_from_system(text: str) -> str | None:
    """The KB passages of a system message built by ``groundwork.chat_format.system_message`` (numbering removed)."""
    blocks = _KB.findall(text)
    if not blocks:
        return None
    return _PASSAGE_NUMBER.sub("", blocks[-1]).strip() or None


class PolicyTextDecoder:
    """Decodes ``[prompt | response]`` token rows of one policy tokenizer into reward-model inputs."""

    def __init__(self, tokenizer) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError("the policy tokenizer has no chat template; the composite reward needs one")
        self.tokenizer = tokenizer
        user = [{"role": "user", "content": _SENTINEL.format("U")}]
        with_prompt = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
        without = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=False)
        self.generation_prompt = with_prompt[len(without):] if with_prompt.startswith(without) else ""
        if not self.generation_prompt.strip():
            raise ConfigError("cannot find the generation prompt of the policy's chat template")
        self.marker_ids = tokenizer(self.generation_prompt, add_special_tokens=False)["input_ids"]
        self.role_prefixes = self._role_prefixes()

    def _role_prefixes(self) -> dict[str, str]:
        """Text that opens each role's turn, e.g. ``<|im_start|>user\\n`` (learned from the template).

        The opening is taken from the last special token before the role's name up to the message content.
        """
        prefixes = {}
        for role in ("system", "user", "assistant"):
            content = _SENTINEL.format(role)
            messages = [{"role": "user", "content": "x"}] if role == "assistant" else []
            messages.append({"role": role, "content": content})
            try:
                rendered = self.tokenizer.apply_chat_template(messages, tokenize=False)
            except Exception:  # noqa: BLE001 - templates raise anything for roles they do not support
                continue
            at = rendered.find(content)
            name_at = rendered.rfind(role, 0, at)
            if at < 0 or name_at < 0:
                continue
            starts = [rendered.rfind(t, 0, name_at) for t in self.tokenizer.all_special_tokens]
            begin = max([s for s in starts if s >= 0], default=name_at)
            prefixes[role] = rendered[begin:at]
        return prefixes

    def find_context_length(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> int | None:
        """The column where responses start, if the generation prompt ends there in every row."""
        k = len(self.marker_ids)
        if k == 0 or input_ids.shape[1] < k:
            return None
        marker = torch.tensor(self.marker_ids, dtype=input_ids.dtype)
        windows = input_ids.unfold(1, k, 1)  # [B, T-k+1, k]
        hits = (windows == marker).all(-1) & attention_mask.unfold(1, k, 1).bool().all(-1)
        common = hits.all(0).nonzero().flatten()
        return int(common[-1]) + k if len(common) else None

    def _split_row(self, ids: list[int]) -> tuple[list[int], list[int]]:
        k = len(self.marker_ids)
        for end in range(len(ids) - k, -1, -1):
            if ids[end:end + k] == self.marker_ids:
                return ids[: end + k], ids[end + k:]
        return ids, []

    def parse_prompt(self, text: str) -> tuple[list[dict[str, str]], str | None]:
        """(user/assistant turns, KB context) from a rendered prompt."""
        pattern = "|".join(re.escape(p) for p in self.role_prefixes.values() if p)
        roles = {p: r for r, p in self.role_prefixes.items()}
        pieces = re.split(f"({pattern})", text) if pattern else [text]
        messages, context, role = [], None, None
        for piece in pieces:
            if piece in roles:
                role = roles[piece]
                continue
            content = self._strip_special(piece)
            if role is None or not content:
                continue
            if role == "system":
                context = context_from_system(content) or context
            else:
                messages.append({"role": role, "content": content})
        if not messages or messages[-1]["role"] != "user":
            messages.append({"role": "user", "content": self._strip_special(text)[-2000:] or "(empty)"})
        return messages, context

    def _strip_special(self, text: str) -> str:
        for token in self.tokenizer.all_special_tokens:
            text = text.replace(token, "")
        return text.strip()

    def decode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, context_length: int | None = None):
        """One ``(messages, response, context)`` per row; pads (mask 0) are dropped."""
        if context_length is None:
            context_length = self.find_context_length(input_ids, attention_mask)
        out = []
        for row, mask in zip(input_ids.tolist(), attention_mask.bool().tolist(), strict=True):
            if context_length is not None:
                prompt = [t for t, m in zip(row[:context_length], mask[:context_length], strict=True) if m]
                response = [t for t, m in zip(row[context_length:], mask[context_length:], strict=True) if m]
            else:
                prompt, response = self._split_row([t for t, m in zip(row, mask, strict=True) if m])
            prompt_text = self.tokenizer.decode(prompt, skip_special_tokens=False)
            response_text = self.tokenizer.decode(response, skip_special_tokens=True).strip()
            messages, context = self.parse_prompt(prompt_text)
            out.append((messages, response_text, context))
        return out
