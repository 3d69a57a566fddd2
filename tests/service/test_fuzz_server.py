"""Body and connection checks against a real uvicorn server on 127.0.0.1 (started with the options
`nascreen serve` uses), with raw sockets (what httpx will not send): a body declared longer than sent, a
body that never finishes, JSON nested too deep, headers sent a byte at a time (slowloris), a connection that
sends nothing, and more connections than the cap. Every check runs against both HTTP stacks the server
offers: httptools on uvloop (the default) and h11 on asyncio's own loop (``--http h11 --loop asyncio``, the
stack before them)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from service.api.app import create_app
from service.api.protocol import PROTOCOLS
from service.api.settings import ApiSettings
from service.cli.serve import uvicorn_options

pytestmark = [pytest.mark.server, pytest.mark.fuzz]

TIMEOUT_S = 1.0
HEADER_TIMEOUT_S = 1.0
MAX_CONNECTIONS = 4


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module", params=[("httptools", "uvloop"), ("h11", "asyncio")], ids="/".join)
def port(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    http, loop = request.param
    root: Path = tmp_path_factory.mktemp(f"fuzz-server-{http}")
    settings = ApiSettings(
        project_root=root,
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}",  # no models: these requests never reach one
        job_executor="local",
        body_timeout_s=TIMEOUT_S,
        header_timeout_s=HEADER_TIMEOUT_S,
        max_connections=MAX_CONNECTIONS,
        http_protocol=http,
        event_loop=loop,
        port=_free_port(),
    )
    port = settings.port
    config = uvicorn.Config(create_app(settings), **uvicorn_options(settings, "warning"))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-fuzz", daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert thread.is_alive(), "uvicorn exited during start-up"
        assert time.monotonic() < deadline, "uvicorn did not start in 120 s"
        time.sleep(0.05)
    _assert_served_with(server, port, PROTOCOLS[http], loop)
    yield port
    server.should_exit = True
    thread.join(timeout=60)
    assert not thread.is_alive()


def _assert_served_with(server: uvicorn.Server, port: int, protocol: type, loop: str) -> None:
    """A connection to the server is handled by the guarded ``protocol`` class on the ``loop`` asked for."""
    with socket.create_connection(("127.0.0.1", port), timeout=30):
        deadline = time.monotonic() + 10
        while not server.server_state.connections:
            assert time.monotonic() < deadline, "the server did not register the connection"
            time.sleep(0.01)
        handler = next(iter(server.server_state.connections))
        assert type(handler) is protocol
        assert type(handler.loop).__module__.startswith(loop), type(handler.loop)


def _exchange(port: int, payload: bytes, wait_s: float = 30.0) -> tuple[bytes, float, bool]:
    """Send ``payload``, read until the server closes or ``wait_s``: (response, seconds, closed by server)."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as sock:
        sock.sendall(payload)
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except TimeoutError:
            return data, time.monotonic() - start, False
    return data, time.monotonic() - start, True


def test_a_body_declared_longer_than_sent_gets_408_and_the_connection_is_closed(port: int) -> None:
    head = b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    data, seconds, closed = _exchange(port, head + b'Content-Length: 1000\r\n\r\n{"items": [')
    assert data.startswith(b"HTTP/1.1 408 "), data[:200]
    assert b"11 of the 1000 declared bytes arrived within 1 s" in data
    assert closed, "the server kept the connection open"
    assert TIMEOUT_S * 0.9 <= seconds < TIMEOUT_S + 10  # not the client's own (30 s) timeout


def test_a_chunked_body_that_never_finishes_gets_408(port: int) -> None:
    head = b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    data, seconds, closed = _exchange(port, head + b'5\r\n{"ite\r\n')
    assert data.startswith(b"HTTP/1.1 408 "), data[:200]
    assert closed and seconds < TIMEOUT_S + 10


def test_json_nested_990_levels_gets_a_400_that_says_why(port: int) -> None:
    body = b"[" * 990 + b"]" * 990
    head = f"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"  # noqa: E501
    data, _, _ = _exchange(port, head.encode() + body)
    assert data.startswith(b"HTTP/1.1 400 "), data[:200]
    assert b"JSON nested more than 64 levels deep" in data


def test_the_server_still_answers_after_the_bad_requests(port: int) -> None:
    data, _, _ = _exchange(port, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 "), data[:200]


def _drip(port: int, payload: bytes, every_s: float, wait_s: float = 30.0) -> tuple[bytes, float]:
    """Send ``payload`` one byte every ``every_s`` (then nothing) until the server closes the connection:
    (what it answered, seconds from connecting). Fails if the server is still holding it after ``wait_s``."""
    start = time.monotonic()
    data = b""
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as sock:
        sock.settimeout(every_s)
        sent = 0
        while time.monotonic() - start < wait_s:
            if sent < len(payload):
                try:
                    sock.sendall(payload[sent : sent + 1])
                    sent += 1
                except OSError:  # the server closed while we were sending: read what it answered
                    pass
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                return data, time.monotonic() - start
            if not chunk:
                return data, time.monotonic() - start
            data += chunk
    raise AssertionError(f"the server held a dripping connection for {wait_s} s")


def test_headers_sent_a_byte_at_a_time_get_408_and_the_connection_is_closed(port: int) -> None:
    # the whole request line + headers would take 6 s at this rate: the server must not wait for them
    slow = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slowloris\r\nAccept: */*\r\n\r\n"
    data, seconds = _drip(port, slow, every_s=0.1)
    assert data.startswith(b"HTTP/1.1 408 "), data[:200]
    assert b"request line and headers not received in time" in data
    assert HEADER_TIMEOUT_S * 0.9 <= seconds < HEADER_TIMEOUT_S + 5, seconds


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(port: int) -> None:
    data, seconds = _drip(port, b"", every_s=0.1)
    assert data.startswith(b"HTTP/1.1 408 "), data[:200]
    assert b"0 bytes arrived" in data
    assert seconds < HEADER_TIMEOUT_S + 5


def test_the_header_deadline_applies_to_the_next_request_on_a_kept_alive_connection(port: int) -> None:
    fast = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(fast)
        first = b""
        while b"\r\n\r\n" not in first:
            first += sock.recv(65536)
        head, _, body = first.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), head
        length = int(next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:"))[15:])
        while len(body) < length:  # the whole first response: what follows answers the second request
            body += sock.recv(65536)
        start = time.monotonic()
        sock.sendall(b"GET /he")  # ...and the rest never comes
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        seconds = time.monotonic() - start
    assert data.startswith(b"HTTP/1.1 408 "), data[:200]
    assert b"7 bytes arrived" in data
    assert seconds < HEADER_TIMEOUT_S + 5


def test_headers_split_across_packets_within_the_deadline_are_served(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        for part in (b"GET /hea", b"lth HTTP/1.1\r\nHost: 127", b".0.0.1\r\nConnection: close\r\n\r\n"):
            sock.sendall(part)
            time.sleep(HEADER_TIMEOUT_S / 5)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 "), data[:200]


def test_connections_beyond_the_cap_get_a_clear_503_and_service_resumes(port: int) -> None:
    idle = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.2)  # the server has accepted them all
        data, _, closed = _exchange(
            port, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", wait_s=HEADER_TIMEOUT_S / 2
        )
        assert data.startswith(b"HTTP/1.1 503 "), data[:200]
        assert b"retry-after: 1" in data.lower()
        assert f"limit of {MAX_CONNECTIONS} concurrent connections".encode() in data
        assert closed
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.2)  # the closed connections are gone: the next one is served
    data, _, _ = _exchange(port, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 "), data[:200]


def test_idle_connections_at_the_cap_are_timed_out_and_free_their_slots(port: int) -> None:
    idle = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(HEADER_TIMEOUT_S + 1.0)  # each is answered 408 and closed by the server
        data, _, _ = _exchange(port, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 200 "), data[:200]
        assert all(sock.recv(65536).startswith(b"HTTP/1.1 408 ") for sock in idle)
    finally:
        for sock in idle:
            sock.close()
