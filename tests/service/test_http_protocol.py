"""TCP_NODELAY on connections accepted from a socket bound the way uvicorn's multi-worker supervisor binds
it (``socket.socket(family=AF_INET)``, proto 0: asyncio leaves Nagle on for those)."""

from __future__ import annotations

import asyncio
import socket

from service.api.protocol import GuardedH11Protocol, configure, set_nodelay


def _accepted_nodelay(apply: bool) -> int:
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

    return asyncio.run(main())


def test_nodelay_is_off_without_the_fix_and_on_with_it() -> None:
    assert _accepted_nodelay(apply=False) == 0  # the cause: a constant ~40 ms per response
    assert _accepted_nodelay(apply=True) != 0


def test_the_served_protocol_sets_nodelay_and_is_importable_by_string() -> None:
    from uvicorn.importer import import_from_string

    assert import_from_string(configure(10.0, 256)) is GuardedH11Protocol

    class Transport:
        def __init__(self, sock: socket.socket) -> None:
            self.sock = sock

        def get_extra_info(self, name: str) -> object:
            return self.sock if name == "socket" else None

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        set_nodelay(Transport(sock))  # type: ignore[arg-type]
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
