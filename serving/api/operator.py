"""``/v1/operator``: the operator console's data over HTTP, for scripts and a ticketing integration.

Only mounted with operator logins (``--admin-auth``); each request needs one as a bearer key
(``Authorization: Bearer user:password``). The chat's ``--auth`` keys are not operator keys.

* ``GET /v1/operator/tickets?status=open|assigned|closed|all&limit=N``: tickets (default: not closed) with
  their redacted conversation, oldest first.
* ``GET /v1/operator/tickets/{id}``: one ticket.
* ``POST /v1/operator/tickets/{id}/close`` with ``{"note": "..."}``: close it (409 when already closed).
* ``GET /v1/operator/stats``: the Feedback view's counts.
* ``GET /v1/operator/export``: preference pairs as JSONL (the ``parley feedback export`` format).
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from serving.api.routes import ApiError
from serving.feedback import tickets
from serving.feedback.store import FeedbackValueError, UnknownRecordError

MAX_NOTE_BODY = 64_000


def _ticket_json(ticket: dict[str, Any]) -> dict[str, Any]:
    out = dict(ticket)
    for key in ("created_at", "closed_at"):
        out[key] = out[key].isoformat() if out[key] is not None else None
    return out


class OperatorKeys:
    """The operator bearer keys; compared in constant time, and the name of the matching operator returned."""

    def __init__(self, users: list[tuple[str, str]]) -> None:
        self.keys = [(f"{u}:{p}".encode(), u) for u, p in users]

    def operator(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        given = header[7:].strip().encode() if header.lower().startswith("bearer ") else b""
        found = None
        for key, user in self.keys:  # no early exit: every key is compared
            if hmac.compare_digest(given, key) and found is None:
                found = user
        if not given or found is None:
            raise ApiError(401, "missing or wrong operator key (use an --admin-auth user:password as the bearer "
                                "key)", kind="authentication_error", code="invalid_api_key")
        return found


def _unauthorized(exc: ApiError) -> JSONResponse:
    response = exc.response()
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="parley-operator"'
    return response


def build_operator_router(store: Any, keys: OperatorKeys, on_close: Any = None) -> APIRouter:
    """The ``/v1/operator`` routes; ``on_close`` is called after each closed ticket (for /metrics)."""
    router = APIRouter(prefix="/v1/operator")

    def number(value: str | None, name: str, default: int | None = None) -> int:
        """Path and query numbers are parsed after the key check, so a bad one never answers before a 401."""
        if value in (None, "") and default is not None:
            return default
        try:
            return int(str(value))
        except ValueError:
            raise ApiError(400, f"{name} must be an integer, got {value!r}", param=name) from None

    def statuses(value: str | None) -> Any:
        if value in (None, "", "open"):
            return tickets.OPEN
        return None if value == "all" else value

    @router.get("/tickets")
    async def list_tickets(request: Request, status: str | None = None, limit: str | None = None) -> Response:
        try:
            keys.operator(request)
            rows = await run_in_threadpool(tickets.list_handoffs, store, statuses(status),
                                           number(limit, "limit", 100))
        except ApiError as exc:
            return _unauthorized(exc)
        except FeedbackValueError as exc:
            return ApiError(400, str(exc)).response()
        return JSONResponse({"object": "list", "data": [_ticket_json(t) for t in rows]})

    @router.get("/tickets/{ticket_id}")
    async def get_ticket(request: Request, ticket_id: str) -> Response:
        try:
            keys.operator(request)
            ticket = await run_in_threadpool(tickets.get_handoff, store, number(ticket_id, "ticket_id"))
        except ApiError as exc:
            return _unauthorized(exc)
        except FeedbackValueError as exc:
            return ApiError(400, str(exc)).response()
        except UnknownRecordError as exc:
            return ApiError(404, str(exc), code="not_found").response()
        return JSONResponse(_ticket_json(ticket))

    @router.post("/tickets/{ticket_id}/close")
    async def close_ticket(request: Request, ticket_id: str) -> Response:
        try:
            operator = keys.operator(request)
            ticket_number = number(ticket_id, "ticket_id")
            body = await request.body()
            if len(body) > MAX_NOTE_BODY:
                raise ApiError(413, f"request body larger than {MAX_NOTE_BODY} bytes", code="request_too_large")
            try:
                data = json.loads(body or b"{}")
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise ApiError(400, 'send a JSON object: {"note": "what was done"}', code="invalid_json") from None
            note = data.get("note") if isinstance(data, dict) else None
            ticket = await run_in_threadpool(tickets.close_handoff, store, ticket_number, note,
                                           operator)
        except ApiError as exc:
            return _unauthorized(exc)
        except tickets.TicketClosedError as exc:
            return ApiError(409, str(exc), code="ticket_closed").response()
        except UnknownRecordError as exc:
            return ApiError(404, str(exc), code="not_found").response()
        except FeedbackValueError as exc:
            return ApiError(400, str(exc), param="note").response()
        if on_close is not None:
            on_close()
        return JSONResponse(_ticket_json(ticket))

    @router.get("/stats")
    async def stats(request: Request) -> Response:
        try:
            keys.operator(request)
        except ApiError as exc:
            return _unauthorized(exc)
        return JSONResponse(await run_in_threadpool(store.stats))

    @router.get("/export")
    async def export(request: Request) -> Response:
        try:
            keys.operator(request)
        except ApiError as exc:
            return _unauthorized(exc)
        rows = await run_in_threadpool(store.export_preferences)
        body = "".join(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in rows)
        return Response(body, media_type="application/x-ndjson",
                        headers={"Content-Disposition": 'attachment; filename="preferences.jsonl"',
                                 "Cache-Control": "no-store"})

    return router
