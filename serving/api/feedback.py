"""``POST /v1/feedback``: like, dislike (with a reason), rate or correct an answer from the API.

The answer is named by the ``parley.message_id`` a chat completion returns. The request goes through the
same checks and the same store call as the chat UI's feedback (validation, PII redaction of the correction,
one row per answer and rater, updated by later requests). A client that may retry sends an idempotency key
(``Idempotency-Key`` header or ``idempotency_key`` in the body): a retry with the same key and body is
answered with the first result and not applied again; the same key with another body is a 409. Errors are
OpenAI-shaped (``{"error": {"message", "type", "param", "code"}}``).

The rater is ``api``, or ``api:<user>`` with the user of the API key (``--auth user:password``), plus
``:<end user>`` when the body names one (``user``, like OpenAI's field): each rater has one feedback row per
answer. A rater id that looks like an e-mail or phone number is stored as a pseudonym.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool

from groundwork.errors import ParleyError
from serving.api.routes import ApiError, _validation_message, check_api_key, read_json_object
from serving.feedback.reasons import REASON_KEYS, objective_of
from serving.feedback.store import (
    MAX_IDEMPOTENCY_KEY_CHARS,
    FeedbackValueError,
    IdempotencyConflictError,
    UnknownRecordError,
)
from serving.limits import LimitError

HINT = 'send a JSON object such as {"message_id": 12, "label": "dislike", "reason": "made_up_fact"}'


class FeedbackRequest(BaseModel):
    """The body of ``POST /v1/feedback``; unknown fields are refused (a typo must not be silently dropped)."""

    model_config = ConfigDict(extra="forbid")

    message_id: StrictInt = Field(ge=1)
    label: Literal["like", "dislike"] | None = None
    rating: StrictInt | None = Field(default=None, ge=1, le=5)
    reason: StrictStr | None = None
    correction: StrictStr | None = None
    idempotency_key: StrictStr | None = Field(default=None, min_length=1, max_length=MAX_IDEMPOTENCY_KEY_CHARS)
    user: StrictStr | None = Field(default=None, min_length=1, max_length=64)

    @field_validator("reason")
    @classmethod
    def _known_reason(cls, value: str | None) -> str | None:
        if value is not None and value not in REASON_KEYS:
            raise ValueError(f"must be one of {', '.join(REASON_KEYS)}")
        return value

    def like(self) -> bool | None:
        return None if self.label is None else self.label == "like"


def rater_for(key: str | None, end_user: str | None) -> str:
    """``api``, ``api:<key user>``, then ``:<end user>`` when the request names one."""
    parts = ["api"]
    if key:
        parts.append(key.split(":", 1)[0])
    if end_user:
        parts.append(end_user.strip())
    return ":".join(parts)


def _response(receipt: Any) -> JSONResponse:
    row = receipt.row
    label = None if row["like"] is None else ("like" if row["like"] else "dislike")
    body = {
        "object": "feedback",
        "id": receipt.feedback_id,
        "message_id": row["message_id"],
        "label": label,
        "rating": row["rating"],
        "reason": row["reason"],
        "objective": objective_of(row["reason"]) if row["reason"] else None,
        "correction": row["correction"],  # as stored: personal data redacted
        "updated_at": row["updated_at"].isoformat() if row["updated_at"] else None,
        "replayed": receipt.replayed,
    }
    return JSONResponse(body, headers={"Idempotent-Replayed": "true"} if receipt.replayed else None)


def build_feedback_router(service: Any, max_bytes: int, api_keys: set[str] | None) -> APIRouter:
    """``POST /feedback`` (mounted under ``/v1``), with the chat API's key check and body limits."""
    router = APIRouter()

    @router.post("/feedback")
    async def feedback(request: Request) -> JSONResponse:
        try:
            key = check_api_key(request, api_keys)
            data = await read_json_object(request, max_bytes, HINT)
            try:
                req = FeedbackRequest.model_validate(data)
            except ValidationError as exc:
                message, param = _validation_message(exc)
                raise ApiError(400, message, param=param) from None
            header_key = request.headers.get("idempotency-key")
            if header_key is not None and req.idempotency_key is not None and header_key != req.idempotency_key:
                raise ApiError(400, "the Idempotency-Key header and idempotency_key in the body differ",
                               param="idempotency_key")
            if req.label is None and req.rating is None and req.reason is None and req.correction is None:
                raise ApiError(400, "send at least one of label, rating, reason or correction", param="label")
            receipt = await run_in_threadpool(
                service.api_feedback, req.message_id, rater_for(key, req.user), like=req.like(), rating=req.rating,
                correction=req.correction, reason=req.reason, idempotency_key=header_key or req.idempotency_key)
            return _response(receipt)
        except ApiError as exc:
            return exc.response()
        except UnknownRecordError as exc:
            return ApiError(404, str(exc), code="message_not_found", param="message_id").response()
        except IdempotencyConflictError as exc:
            return ApiError(409, str(exc), code="idempotency_key_reused", param="idempotency_key").response()
        except LimitError as exc:
            return ApiError(400, str(exc), code="limit_exceeded", param="correction").response()
        except FeedbackValueError as exc:
            return ApiError(400, str(exc)).response()
        except ParleyError as exc:
            return ApiError(500, f"feedback could not be stored: {exc}", kind="server_error").response()

    return router
