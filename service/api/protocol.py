"""The HTTP/1.1 protocols `nascreen serve` runs: uvicorn's httptools protocol (C parser, the default) or its
h11 protocol (pure Python, ``--http h11``), each with the same three additions (one definition,
`ConnectionGuards`, mixed into both).

- **Header timeout** (``header_timeout_s``): uvicorn (0.54) times out a connection only while it is idle
  *between* requests (keep-alive, after a response) and stops that timer on the first byte received; a
  connection that opens and sends nothing, or sends its request line and headers a byte at a time
  ("slowloris"), is held open for as long as the client likes. Here the request line and headers of every
  request must be complete within ``header_timeout_s`` of the connection opening (first request) or of the
  first byte of the next request; otherwise the server answers 408 and closes the connection. The body has
  its own deadline (``body_timeout_s``, in ``service.api.middleware``).
- **Connection cap** (``max_connections``, per server process): a request arriving on a connection beyond
  the cap gets 503 with a JSON ``detail``, ``Retry-After`` and ``Connection: close`` instead of uvicorn's
  ``limit_concurrency`` text reply; connections under the cap are served as usual. Slow connections count
  against the cap only until their header timeout closes them.

- **TCP_NODELAY** on every accepted connection: asyncio turns Nagle's algorithm off only for sockets whose
  ``proto`` is IPPROTO_TCP, and uvicorn's multi-worker supervisor binds its listening socket with proto 0,
  so the connections the workers accept kept Nagle on; the response head and body go out in two writes and
  the second waited for the client's delayed ACK: a constant ~40 ms per response (GET /health p50 44 ms
  with ``--workers 2`` against ~1 ms with one worker).

Both guards are set per process by `configure` (the supervisor and each worker of a multi-process server call
it from the same settings) because uvicorn builds one protocol instance per connection from the class. The
two protocols differ only in how they tell that a request's headers are still awaited and that a response is
still being sent (`_awaiting_headers`, `_responding`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.api.settings import HttpProtocolName

logger = logging.getLogger("nascreen.api.protocol")

DEFAULT_HEADER_TIMEOUT_S = 10.0
DEFAULT_MAX_CONNECTIONS = 256
RETRY_AFTER_S = 1


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    """TCP_NODELAY on the transport's socket when it is a TCP socket (no-op for Unix sockets)."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):  # the peer already went away: nothing to speed up
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _raw_response(status: int, reason: str, detail: str) -> bytes:
    """A whole HTTP/1.1 response with a JSON ``detail`` that closes the connection (written straight to the
    transport: neither parser has a request to answer yet)."""
    body = json.dumps({"detail": detail}).encode()
    head = [
        f"HTTP/1.1 {status} {reason}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class ConnectionGuards(asyncio.Protocol):
    """The header deadline, connection cap and TCP_NODELAY (module docstring), mixed in before one of
    uvicorn's HTTP protocols, which provides ``loop``, ``transport``, ``connections``, ``client``, ``app``."""

    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    max_connections: int = DEFAULT_MAX_CONNECTIONS

    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    connections: set[Any]
    client: tuple[str, int] | None
    app: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0  # bytes of the awaited request line and headers received so far

    # -- what each protocol answers from its own parser's state ----------------------------------------
    def _awaiting_headers(self) -> bool:
        """The client has not yet completed the current request's line and headers."""
        raise NotImplementedError

    def _responding(self) -> bool:
        """A response is being sent on this connection."""
        raise NotImplementedError

    # -- asyncio.Protocol ------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        set_nodelay(transport)
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            self.app = _over_capacity(self.max_connections)
            logger.warning(
                "connection from %s over the cap of %d concurrent connections: answering 503",
                self.client[0] if self.client else "?",
                self.max_connections,
            )
        self._arm_header_timer()  # a connection that never sends anything is closed too

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self._awaiting_headers():
            self._cancel_header_timer()
            return
        if self._header_timer is None:  # the first bytes of a request on a kept-alive connection
            self._arm_header_timer()
        self._header_bytes += len(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    # -- the header deadline ---------------------------------------------------------------------------
    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_bytes = 0
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_timeout)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or not self._awaiting_headers():
            return
        if self._responding():  # leave the response to finish
            return
        pending = self._header_bytes
        logger.warning(
            "request headers from %s not complete within %g s (%d bytes received): 408, connection closed",
            self.client[0] if self.client else "?",
            self.header_timeout_s,
            pending,
        )
        self.transport.write(
            _raw_response(
                408,
                "Request Timeout",
                f"request line and headers not received in time: {pending} bytes arrived within "
                f"{self.header_timeout_s:g} s (the limit for a request's headers)",
            )
        )
        self.transport.close()


class GuardedH11Protocol(ConnectionGuards, H11Protocol):
    """uvicorn's h11 protocol with the guards: h11 waits in IDLE until a request's headers are parsed."""

    def _awaiting_headers(self) -> bool:
        return bool(self.conn.their_state is h11.IDLE)

    def _responding(self) -> bool:
        return bool(self.conn.our_state is not h11.IDLE)


class GuardedHttpToolsProtocol(ConnectionGuards, HttpToolsProtocol):
    """uvicorn's httptools protocol with the guards: the parser's callbacks mark where a request's headers
    begin (``on_message_begin``, on its first byte) and end (``on_headers_complete``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_headers = True  # the first request's headers are awaited from the connection's start

    def on_message_begin(self) -> None:
        self._in_headers = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_headers = False
        super().on_headers_complete()

    def _awaiting_headers(self) -> bool:
        return self._in_headers

    def _responding(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete


PROTOCOLS: dict[HttpProtocolName, type[ConnectionGuards]] = {
    "httptools": GuardedHttpToolsProtocol,
    "h11": GuardedH11Protocol,
}


def _over_capacity(limit: int) -> Any:
    """An ASGI app answering every request with 503 (JSON detail, Retry-After, Connection: close)."""
    payload = json.dumps(
        {
            "detail": f"the server is at its limit of {limit} concurrent connections; "
            f"retry in {RETRY_AFTER_S} s"
        }
    ).encode()

    async def busy(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"retry-after", str(RETRY_AFTER_S).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload, "more_body": False})

    return busy


def configure(header_timeout_s: float, max_connections: int, http: HttpProtocolName = "httptools") -> str:
    """Set this process's guards (for both protocols); returns the ``http=`` value to give uvicorn."""
    ConnectionGuards.header_timeout_s = header_timeout_s
    ConnectionGuards.max_connections = max_connections
    return f"{__name__}:{PROTOCOLS[http].__name__}"
