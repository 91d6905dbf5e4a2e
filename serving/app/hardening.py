"""ASGI middleware around the whole server (Gradio and API): traversal, body size, and "busy" instead of 5xx.

* Paths with ``..`` segments, backslashes or NUL bytes, in any percent-encoding depth, are refused with 400
  before any route (Gradio's ``/gradio_api/file=`` included) sees them. Gradio already refuses files outside
  its allowed paths; this is the second lock on that door.
* Request bodies above ``max_bytes`` get 413 from the declared ``Content-Length`` (the API also counts bytes
  of chunked bodies as it reads them).
* Gradio answers a full queue with 503; we answer 429 with a "busy" message, which the browser shows as the
  error text and HTTP clients read as "retry later" rather than "server broken".
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from serving.limits import BUSY_MESSAGE

Scope = dict[str, Any]

_BAD_SEGMENTS = ("..",)


def suspicious_path(raw: str) -> bool:
    """True when ``raw`` (or any of its percent-decodings, up to 4 levels) walks up or hides separators."""
    seen = raw
    for _ in range(5):
        lowered = seen.lower()
        if "\\" in seen or "\x00" in seen or "%00" in lowered:
            return True
        parts = seen.replace("=", "/").replace("&", "/").split("/")
        if any(part.strip() in _BAD_SEGMENTS for part in parts):
            return True
        decoded = unquote(seen)
        if decoded == seen:
            return False
        seen = decoded
    return True  # more than 4 levels of encoding is not a real client


async def _send_json(send: Any, status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class HardeningMiddleware:
    """Pure ASGI (no buffering of streamed responses, so SSE and Gradio's event stream pass through untouched)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        raw = scope.get("raw_path") or scope.get("path", "").encode()
        raw_text = raw.decode("latin-1") if isinstance(raw, bytes) else str(raw)
        query = scope.get("query_string", b"").decode("latin-1")
        if suspicious_path(raw_text) or suspicious_path(scope.get("path", "")) or suspicious_path(query):
            if scope["type"] == "http":
                await _send_json(send, 400, {"detail": "invalid path"})
            return
        if scope["type"] == "http":
            length = dict(scope.get("headers") or []).get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
                await _send_json(send, 413, {"detail": f"request body larger than {self.max_bytes} bytes",
                                             "error": {"message": f"request body larger than {self.max_bytes} "
                                                       "bytes", "type": "invalid_request_error"}})
                return
        await self.app(scope, receive, self._busy_instead_of_503(scope, send))

    @staticmethod
    def _busy_instead_of_503(scope: Scope, send: Any) -> Any:
        if scope["type"] != "http" or not scope.get("path", "").endswith("/queue/join"):
            return send
        state = {"rewrite": False}

        async def wrapped(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and message["status"] == 503:
                state["rewrite"] = True
                body = json.dumps({"detail": BUSY_MESSAGE}).encode()
                await send({"type": "http.response.start", "status": 429,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode()), (b"retry-after", b"2")]})
                await send({"type": "http.response.body", "body": body})
                return
            if state["rewrite"]:
                return  # swallow Gradio's own 503 body
            await send(message)

        return wrapped
