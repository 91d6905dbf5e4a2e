"""Request schema of ``/v1/chat/completions`` (the OpenAI fields Parley honours, plus its own extensions).

Unknown OpenAI fields (``n``, ``user``, ``stream_options``...) are accepted and ignored, as OpenAI-compatible
servers usually do; known fields are strictly typed so a wrong type is a 400 with the field name, never a
500 deep inside generation. Parley's extensions: ``mode`` (support with KB grounding, plain chat, or
translate), ``target_language`` / ``source_language`` for translation, and ``kb`` to turn retrieval off.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, field_validator


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["text"]
    text: StrictStr


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: StrictStr | list[TextPart]

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)

    def parley_role(self) -> str:
        return "system" if self.role == "developer" else self.role


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: StrictStr | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    stream: StrictBool = False
    max_tokens: StrictInt | None = Field(default=None, ge=1)
    max_completion_tokens: StrictInt | None = Field(default=None, ge=1)
    temperature: StrictFloat | StrictInt | None = Field(default=None, ge=0, le=2)
    top_p: StrictFloat | StrictInt | None = Field(default=None, gt=0, le=1)
    stop: StrictStr | list[StrictStr] | None = None
    seed: StrictInt | None = None
    mode: Literal["support", "chat", "translate"] = "support"
    kb: StrictBool = True
    target_language: StrictStr | None = None
    source_language: StrictStr | None = None

    @field_validator("stop")
    @classmethod
    def _few_stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value

    @field_validator("messages")
    @classmethod
    def _ends_with_user(cls, value: list[ChatMessage]) -> list[ChatMessage]:
        if value[-1].role != "user":
            raise ValueError("the last message must come from the user")
        if not value[-1].text().strip():
            raise ValueError("the last user message is empty")
        return value

    def token_budget(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens
