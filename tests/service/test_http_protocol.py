"""TCP_NODELAY on connections accepted from a socket bound the way uvicorn's multi-worker supervisor binds
it (``socket.socket(family=AF_INET)``, proto 0: asyncio leaves Nagle on for those; uvloop turns it off
itself, and `set_nodelay` works on its socket wrapper too)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from service.api.protocol import (
    ConnectionGuards,
    GuardedH11Protocol,
    GuardedHttpToolsProtocol,
    configure,
    set_nodelay,
)


def _accepted_nodelay(apply: bool, run: Callable[[Coroutine[Any, Any, int]], int] = asyncio.run) -> int:
    async def main() -> int:
        listener = socket.socket(family=socket.AF_INET)  # proto 0, as uvicorn's Config.bind_socket
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                if apply:
                    set_nodelay(transport)
                sock = transport.get_extra_info("socket")
                seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await asyncio.get_running_loop().create_server(Probe, sock=listener)
        port = listener.getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            return await asyncio.wait_for(seen, 5)
        finally:
            writer.close()
            server.close()

    return run(main())


def test_nodelay_is_off_without_the_fix_and_on_with_it() -> None:
    assert _accepted_nodelay(apply=False) == 0  # the cause: a constant ~40 ms per response
    assert _accepted_nodelay(apply=True) != 0


def test_nodelay_on_uvloop_connections() -> None:
    assert _accepted_nodelay(apply=False, run=uvloop.run) != 0  # uvloop's own default
    assert _accepted_nodelay(apply=True, run=uvloop.run) != 0  # and set_nodelay handles its socket wrapper


@pytest.mark.parametrize(
    ("http", "cls"), [("httptools", GuardedHttpToolsProtocol), ("h11", GuardedH11Protocol)]
)
def test_the_served_protocol_sets_nodelay_and_is_importable_by_string(
    http: str, cls: type[ConnectionGuards]
) -> None:
    from uvicorn.importer import import_from_string

    assert configure(10.0, 256) == configure(10.0, 256, "httptools")  # the default
    try:
        assert import_from_string(configure(3.5, 7, http)) is cls  # type: ignore[arg-type]
        assert (cls.header_timeout_s, cls.max_connections) == (3.5, 7)  # both protocols share the guards
        other = GuardedH11Protocol if cls is GuardedHttpToolsProtocol else GuardedHttpToolsProtocol
        assert (other.header_timeout_s, other.max_connections) == (3.5, 7)
    finally:
        configure(10.0, 256)

    class Transport:
        def __init__(self, sock: socket.socket) -> None:
            self.sock = sock

        def get_extra_info(self, name: str) -> object:
            return self.sock if name == "socket" else None

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        set_nodelay(Transport(sock))  # type: ignore[arg-type]
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_uvicorn_options_carry_the_chosen_protocol_and_loop() -> None:
    from uvicorn.importer import import_from_string

    from service.api.settings import settings_from_env
    from service.cli.serve import uvicorn_options

    try:
        chosen = uvicorn_options(
            settings_from_env({"NASCREEN_HTTP_PROTOCOL": "h11", "NASCREEN_EVENT_LOOP": "asyncio"})
        )
        assert import_from_string(chosen["http"]) is GuardedH11Protocol
        assert chosen["loop"] == "asyncio"
        default = uvicorn_options(settings_from_env({}))
        assert import_from_string(default["http"]) is GuardedHttpToolsProtocol
        assert default["loop"] == "uvloop"
    finally:
        configure(10.0, 256)
