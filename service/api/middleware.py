"""Pure-ASGI middleware: request id, body checks and one structured (JSON) log line per request.

The body is read here, once, before the app sees it, and is refused with a clear 4xx when it
- is larger than ``max_body_bytes`` (413: early from Content-Length, else while streaming),
- does not arrive within ``body_timeout_s`` (408: a client declaring more than it sends, or dripping it
  slowly, no longer holds a connection and a server slot for its own whole timeout),
- is JSON nested deeper than ``max_json_depth`` (400: the parser would otherwise hit Python's recursion
  limit near 1,000 levels and answer a bare "error parsing the body"),
- is JSON holding an unpaired UTF-16 surrogate escape such as ``"\\ud800"`` (400: not Unicode text; it
  cannot be featurised, stored, logged or echoed back as UTF-8).

Written against raw ASGI rather than `BaseHTTPMiddleware` so it adds microseconds, not milliseconds, to
the single-item predict path, and so the body cap also works on streamed (chunked) uploads.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from typing import Any

import numpy as np
from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("nascreen.api.access")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

DEFAULT_BODY_TIMEOUT_S = 10.0
DEFAULT_MAX_JSON_DEPTH = 64


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


class RequestRejected(Exception):
    """A request refused before the app sees it: the status and the sentence that says why."""

    def __init__(self, status: int, detail: str, *, close: bool = False) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.close = close  # answer with Connection: close (the rest of the body may never come)


class RequestContextMiddleware:
    """Assigns a request id (or keeps a well-formed incoming X-Request-ID), reads and checks the body (see
    the module docstring), hands it on to the app, and logs ``{"method", "path", "status", "duration_ms",
    "request_id", ...}`` as one JSON line."""

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
        max_json_depth: int = DEFAULT_MAX_JSON_DEPTH,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.max_json_depth = max_json_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            try:
                body = await self._checked_body(scope, receive)
            except RequestRejected as rejected:
                await _send_json(send_with_id, rejected.status, {"detail": rejected.detail}, rejected.close)
                return
            await self.app(scope, _replay(body, receive), send_with_id)
        finally:
            entry: dict[str, Any] = {
                "ts": round(time.time(), 3),
                "event": "http_request",
                "request_id": request_id,
                "method": scope.get("method"),
                "path": scope.get("path"),
                "status": status,
                "duration_ms": round((time.perf_counter() - start) * 1000.0, 3),
            }
            client = scope.get("client")
            if client:
                entry["client"] = client[0]
            access_log.info(json.dumps(entry))

    async def _checked_body(self, scope: Scope, receive: Receive) -> bytes:
        length = _header(scope, b"content-length")
        if length is not None:
            if not length.isdigit():
                raise RequestRejected(400, f"invalid Content-Length header {length[:40]!r}")
            if int(length) > self.max_body_bytes:
                raise RequestRejected(
                    413, f"request body of {length} bytes exceeds the limit of {self.max_body_bytes} bytes"
                )
        body = await read_body(
            receive, self.max_body_bytes, self.body_timeout_s, int(length) if length is not None else None
        )
        problem = json_text_problem(body, self.max_json_depth)
        if problem is not None:
            raise RequestRejected(400, f"request body: {problem}")
        return body


async def read_body(receive: Receive, limit: int, timeout_s: float, declared: int | None) -> bytes:
    """The whole request body, or RequestRejected: 413 past ``limit`` bytes, 408 when it has not all
    arrived ``timeout_s`` after the first read (``declared`` is the Content-Length, for the message)."""
    parts: list[bytes] = []
    seen = 0
    more = True
    try:
        async with asyncio.timeout(timeout_s):
            while more:
                message = await receive()
                if message["type"] != "http.request":  # http.disconnect: nobody left to answer
                    raise RequestRejected(
                        400, "client disconnected before sending the whole body", close=True
                    )
                chunk = message.get("body", b"")
                more = bool(message.get("more_body", False))
                seen += len(chunk)
                if seen > limit:
                    raise RequestRejected(413, f"request body exceeds the limit of {limit} bytes", close=more)
                if chunk:
                    parts.append(chunk)
    except TimeoutError:
        expected = f" of the {declared} declared" if declared is not None else ""
        raise RequestRejected(
            408,
            f"request body not received in time: {seen}{expected} bytes arrived within {timeout_s:g} s "
            "(the limit for the whole body)",
            close=True,
        ) from None
    return b"".join(parts)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the app the already-read body once, then defers to the server's (disconnect)."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


# ----------------------------------------------------------------------------------------- JSON checks
# A JSON string (quotes included), escapes allowed; unrolled so it runs in linear time without backtracking.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = np.zeros(256, dtype=np.int32)
_STEP[[ord("["), ord("{")]] = 1
_STEP[[ord("]"), ord("}")]] = -1
# Inside JSON strings: an escaped backslash, or a \uD800-\uDFFF escape optionally followed by a second one.
_SURROGATE = re.compile(
    rb"\\\\|\\u[dD]([89abAB][0-9a-fA-F]{2})(\\u[dD][c-fC-F][0-9a-fA-F]{2})?|\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


def json_text_problem(body: bytes, max_depth: int) -> str | None:
    """Why ``body`` (if it is JSON text) must not reach the JSON parser, or None. Non-JSON bodies (not
    starting with ``{``, ``[`` or ``"``) and JSON syntax errors are left to the app's parser."""
    first = body.lstrip(b" \t\r\n")[:1]
    if first not in (b"{", b"[", b'"'):
        return None
    if body.count(b"[") + body.count(b"{") > max_depth:
        brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKET)
        depth = np.cumsum(_STEP[np.frombuffer(brackets, dtype=np.uint8)])
        if depth.size and int(depth.max()) > max_depth:
            return (
                f"JSON nested more than {max_depth} levels deep (at most {max_depth} levels of arrays "
                "and objects are accepted)"
            )
    if b"\\u" in body:
        for m in _SURROGATE.finditer(body):
            token = m.group(0)
            if token == b"\\\\" or m.group(2) is not None:  # escaped backslash, or a proper pair
                continue
            return (
                f"JSON string holds an unpaired UTF-16 surrogate {token.decode('ascii')} at byte "
                f"{m.start()}: text must be valid Unicode"
            )
    return None


async def _send_json(send: Send, status: int, body: dict[str, Any], close: bool = False) -> None:
    payload = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
