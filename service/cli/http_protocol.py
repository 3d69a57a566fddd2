"""uvicorn's HTTP protocol with TCP_NODELAY set on every accepted connection.

asyncio turns Nagle's algorithm off only for sockets whose ``proto`` is IPPROTO_TCP. uvicorn's
multi-worker supervisor binds its listening socket as ``socket.socket(family=...)`` (proto 0), so the
connections the workers accept keep Nagle on; uvicorn writes the response head and the body in two
``transport.write`` calls, and the second segment then waits for the client's delayed ACK: a constant
~40 ms on every response (GET /health p50 44 ms with ``--workers 2`` against ~1 ms with one worker).
Setting the option per connection fixes it at the cause for any way the socket was bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from uvicorn.protocols.http.auto import AutoHTTPProtocol


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    """TCP_NODELAY on the transport's socket when it is a TCP socket (no-op for Unix sockets)."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):  # the peer already went away: nothing to speed up
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class NoDelayHTTPProtocol(AutoHTTPProtocol):  # type: ignore[misc,valid-type]
    """uvicorn's default HTTP protocol (httptools if installed, else h11) with TCP_NODELAY."""

    def connection_made(self, transport: asyncio.Transport) -> None:
        set_nodelay(transport)
        super().connection_made(transport)


# the import string uvicorn's ``http=`` option takes (a string survives the spawn of worker processes)
HTTP_PROTOCOL = "service.cli.http_protocol:NoDelayHTTPProtocol"
