"""``/v1/models`` and ``/v1/chat/completions`` (JSON and SSE streaming) over the shared chat service, and
``/v1/feedback`` (:mod:`serving.api.feedback`).

The body is read and parsed by hand rather than by FastAPI's model binding, so every way a body can be
wrong (too big, not UTF-8, not JSON, wrong types) gets a 4xx in OpenAI's error shape with a message that
names the problem. Generation runs in the thread pool; the first chunk is fetched before the response
starts, so "busy" and limit errors are real status codes, not errors buried in a 200 stream.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from groundwork.errors import ParleyError
from groundwork.languages import UnknownLanguageError
from serving.api.schemas import ChatCompletionRequest
from serving.app.service import ChatService, Sampling, Session, Turn
from serving.limits import BusyError, LimitError

_END = object()


class ApiError(Exception):
    """An error answered in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.param = status, message, kind, code, param

    def response(self) -> JSONResponse:
        headers = {"Retry-After": "2"} if self.status == 429 else None
        body = {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status, headers=headers)


def _validation_message(exc: ValidationError) -> tuple[str, str | None]:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return (f"{where}: {first['msg']}" if where else first["msg"]), where or None


async def read_json_object(request: Request, max_bytes: int, hint: str) -> dict[str, Any]:
    """The request body as a JSON object, or an :class:`ApiError` that says what is wrong with it."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise ApiError(413, f"request body larger than {max_bytes} bytes", code="request_too_large")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise ApiError(400, f"request body is empty; {hint}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"request body is not valid UTF-8 (byte {exc.start})", code="invalid_encoding") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                       code="invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, "request body must be a JSON object")
    return data


async def _read_body(request: Request, max_bytes: int) -> ChatCompletionRequest:
    data = await read_json_object(request, max_bytes, "send a JSON object with 'messages'")
    try:
        return ChatCompletionRequest.model_validate(data)
    except ValidationError as exc:
        message, param = _validation_message(exc)
        raise ApiError(400, message, param=param) from None


def check_api_key(request: Request, api_keys: set[str] | None) -> str | None:
    """The request's valid API key (None when the API is open); a missing or wrong key is a 401."""
    if not api_keys:
        return None
    header = request.headers.get("authorization", "")
    key = header[7:].strip() if header.lower().startswith("bearer ") else ""
    if key not in api_keys:
        raise ApiError(401, "missing or wrong API key (use the --auth user:password as the key)",
                       kind="authentication_error", code="invalid_api_key")
    return key


class CompletionsApi:
    """Turns one validated request into a service turn and a JSON or SSE response."""

    def __init__(self, service: ChatService, served_name: str, max_bytes: int, api_keys: set[str] | None) -> None:
        self.service = service
        self.served_name = served_name
        self.max_bytes = max_bytes
        self.api_keys = api_keys

    def check_key(self, request: Request) -> None:
        check_api_key(request, self.api_keys)

    def start(self, req: ChatCompletionRequest) -> tuple[Turn, Iterator[str]]:
        """Validate against the limits, store the earlier turns and start generating (lazily)."""
        service, limits = self.service, self.service.limits
        if req.model not in (None, "", self.served_name):
            raise ApiError(404, f"model {req.model!r} is not served here; use {self.served_name!r}",
                           code="model_not_found", param="model")
        messages = [{"role": m.parley_role(), "content": m.text()} for m in req.messages]
        if sum(m["role"] == "user" for m in messages) > limits.max_turns:
            raise ApiError(400, f"the conversation has more than {limits.max_turns} user messages", param="messages")
        try:
            sampling = Sampling(limits.tokens(req.token_budget()),
                                service.default_sampling.temperature if req.temperature is None else req.temperature,
                                service.default_sampling.top_p if req.top_p is None else req.top_p,
                                tuple([req.stop] if isinstance(req.stop, str) else req.stop or ()), req.seed)
            last = messages[-1]["content"]
            session = Session("api")
            live = not service.guard.enabled  # a guarded answer is checked before its first byte leaves
            if req.mode == "translate":
                if not req.target_language:
                    raise ApiError(400, "mode 'translate' needs target_language", param="target_language")
                prompt, _ = service.translation_prompt(last, req.target_language, req.source_language)
                return service.turn(session, last, prompt=prompt, sampling=sampling, use_kb=False,
                                    detect_handoff=False, live=live)
            service.limits.check_message(last)
            service.preload(session, messages[:-1])
            return service.turn(session, last, sampling=sampling, use_kb=req.kb and req.mode == "support",
                                detect_handoff=req.mode == "support", live=live)
        except UnknownLanguageError as exc:
            raise ApiError(400, str(exc), code="unknown_language") from None
        except LimitError as exc:
            raise ApiError(400, str(exc), code="limit_exceeded", param="messages") from None

    @staticmethod
    async def first(deltas: Iterator[str]) -> Any:
        try:
            return await run_in_threadpool(next, deltas, _END)
        except BusyError as exc:
            raise ApiError(429, str(exc), kind="rate_limit_error", code="busy") from None
        except ParleyError as exc:
            raise ApiError(500, f"generation failed: {exc}", kind="server_error") from None

    def usage(self, turn: Turn, budget: int, text: str) -> tuple[dict[str, int] | None, str]:
        """Token counts from the engine's stats (or a re-tokenization) and the OpenAI finish reason."""
        stats = turn.stats
        if stats is not None and stats.completion_tokens:
            prompt, completion = stats.prompt_tokens, stats.completion_tokens
        else:
            tokenizer = getattr(self.service.engine, "tokenizer", None)
            if tokenizer is None:
                return None, "length" if turn.finish_reason == "timeout" else "stop"
            completion = len(tokenizer(text, add_special_tokens=False)["input_ids"])
            prompt = len(tokenizer(turn.user_text, add_special_tokens=False)["input_ids"])
        finish = "length" if turn.finish_reason == "timeout" or completion >= budget else "stop"
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}, finish

    @staticmethod
    def extension(turn: Turn) -> dict[str, Any]:
        return {"citations": [{k: c[k] for k in ("id", "title", "score")} for c in turn.citations],
                "handoff_ticket": turn.ticket_id, "guard": turn.blocked, "message_id": turn.message_id,
                "explanation": turn.explanation}  # "Why this answer" (serving.explain)

    async def complete(self, req: ChatCompletionRequest, turn: Turn, deltas: Iterator[str], first: Any) -> JSONResponse:
        pieces = [] if first is _END else [first]
        try:
            pieces += await run_in_threadpool(list, deltas)
        except ParleyError as exc:
            raise ApiError(500, f"generation failed: {exc}", kind="server_error") from None
        text = turn.text or "".join(pieces)
        usage, finish = self.usage(turn, self.service.limits.tokens(req.token_budget()), text)
        body = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
                "model": self.served_name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
                "usage": usage, "parley": self.extension(turn)}
        return JSONResponse(body)

    def stream(self, turn: Turn, deltas: Iterator[str], first: Any) -> StreamingResponse:
        cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
            body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": self.served_name,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
            return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

        async def events() -> AsyncIterator[str]:
            try:
                yield chunk({"role": "assistant", "content": ""})
                if first is not _END and first:
                    yield chunk({"content": first})
                while True:
                    delta = await run_in_threadpool(next, deltas, _END)
                    if delta is _END:
                        break
                    if delta:
                        yield chunk({"content": delta})
                finish = "length" if turn.finish_reason == "timeout" else "stop"
                yield chunk({}, finish, parley=self.extension(turn))
                yield "data: [DONE]\n\n"
            except ParleyError as exc:
                yield f"data: {json.dumps({'error': {'message': str(exc), 'type': 'server_error'}})}\n\n"
            finally:
                turn.cancel.set()  # the client went away (or we are done): free the engine

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def build_router(service: ChatService, served_name: str, max_bytes: int, api_keys: set[str] | None) -> APIRouter:
    """The ``/v1`` routes; ``api_keys`` None leaves the API open (as the UI is without ``--auth``)."""
    from serving.api.feedback import build_feedback_router

    api = CompletionsApi(service, served_name, max_bytes, api_keys)
    router = APIRouter(prefix="/v1")
    router.include_router(build_feedback_router(service, max_bytes, api_keys))  # POST /v1/feedback

    @router.get("/models")
    async def models(request: Request) -> JSONResponse:
        try:
            api.check_key(request)
        except ApiError as exc:
            return exc.response()
        return JSONResponse({"object": "list", "data": [
            {"id": served_name, "object": "model", "created": 0, "owned_by": "parley"}]})

    @router.post("/chat/completions")
    async def chat_completions(request: Request) -> Any:
        try:
            api.check_key(request)
            req = await _read_body(request, max_bytes)
            turn, deltas = await run_in_threadpool(api.start, req)
            first = await api.first(deltas)
            if req.stream:
                return api.stream(turn, deltas, first)
            return await api.complete(req, turn, deltas, first)
        except ApiError as exc:
            return exc.response()

    return router
