"""Body checks against a real uvicorn server on 127.0.0.1, with raw sockets (what httpx will not send): a
body declared longer than sent, a body that never finishes, JSON nested too deep."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from service.api.app import create_app
from service.api.settings import ApiSettings

pytestmark = [pytest.mark.server, pytest.mark.fuzz]

TIMEOUT_S = 1.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    root: Path = tmp_path_factory.mktemp("fuzz-server")
    settings = ApiSettings(
        project_root=root,
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}",  # no models: these requests never reach one
        job_executor="local",
        body_timeout_s=TIMEOUT_S,
    )
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=port, log_level="warning", access_log=False
        )
    )
    thread = threading.Thread(target=server.run, name="uvicorn-fuzz", daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert thread.is_alive(), "uvicorn exited during start-up"
        assert time.monotonic() < deadline, "uvicorn did not start in 120 s"
        time.sleep(0.05)
    yield port
    server.should_exit = True
    thread.join(timeout=60)
    assert not thread.is_alive()


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
