"""`nascreen serve` killed with kill -9 in the middle of a Ray screening job leaves no process behind.

The server is started as users start it (one process, or two worker processes; Ray executor: each job
runs an embedded local Ray session in the process that serves it), a job is submitted, and once the
session's raylet and a Ray worker are running the server process gets SIGKILL. Every process that was
below it (uvicorn workers, GCS, raylet, agents, Ray workers) must be gone within a bounded time (the job
is then `interrupted`, by the workers' shutdown or at the next start, and can be resumed: tested in
test_api_jobs).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from screening.process_guard import descendants, process_table
from service.api.settings import ApiSettings

pytestmark = [pytest.mark.server, pytest.mark.slow, pytest.mark.mlflow, pytest.mark.ray]

GONE_WITHIN_S = 30.0

# Enough chunks that the job is still running when the first Ray worker is up.
SPEC: dict[str, Any] = {
    "name": "kill-9",
    "family": "nasicon",
    "host": "Na3Zr2Si2PO12",
    "site": "Zr",
    "dopants": "4d_5d_tm",
    "fractions": [0.02, 0.04, 0.06, 0.08, 0.1, 0.12, 0.14, 0.16, 0.18, 0.2],
    "compensation": "na_content",
    "ranking": {"mode": "ucb", "kappa": 1.0, "objectives": ["ionic_conductivity"]},
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _below(pid: int) -> dict[int, tuple[int, str]]:
    """Every process below ``pid``: pid -> (start time, command line)."""
    table = process_table()
    return {p: (table[p][1], _cmdline(p)) for p in descendants([pid], table) if p != pid}


def _alive(procs: dict[int, tuple[int, str]]) -> dict[int, str]:
    table = process_table()
    return {p: cmd for p, (start, cmd) in procs.items() if table.get(p, (0, -1))[1] == start}


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="the process guard reads /proc (Linux)")
@pytest.mark.parametrize("workers", [1, 2])
def test_kill_9_of_the_server_during_a_ray_job_leaves_no_process_running(
    served_settings: ApiSettings, tmp_path: Path, workers: int
) -> None:
    """Without the guard (measured): one worker left the Ray dashboard and runtime-env agents running
    (30 s and counting); two workers left both uvicorn workers (still serving the port) and their
    resource tracker."""
    port = free_port()
    env = {
        **os.environ,
        "NASCREEN_TARGETS": "ionic_conductivity",
        "NASCREEN_JOB_EXECUTOR": "ray",
        "NASCREEN_RAY_NUM_CPUS": "1",
        "NASCREEN_CHUNK_SIZE": "2",
        "NASCREEN_API_KEY": "test-key",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    cmd = [
        sys.executable, "-c", "from service.cli import main; main()", "serve", "--workers", str(workers),
        "--host", "127.0.0.1", "--port", str(port), "--project-root", str(tmp_path),
        "--tracking-uri", served_settings.resolved_tracking_uri, "--log-level", "warning",
    ]  # fmt: skip
    log_path = tmp_path / "server.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    seen: dict[int, tuple[int, str]] = {}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            deadline = time.monotonic() + 180
            while True:
                assert proc.poll() is None, log_path.read_text()
                try:
                    if client.get("/health").json()["ready"]:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the server did not start in 180 s"
                time.sleep(0.2)
            r = client.post("/v1/screening-jobs", json=SPEC, headers={"X-API-Key": "test-key"})
            assert r.status_code == 202, r.text
            job_id = r.json()["id"]
            deadline = time.monotonic() + 240
            while True:  # until the embedded session runs a Ray worker for the job
                seen.update(_below(proc.pid))
                names = " ".join(cmd for _, cmd in seen.values())
                if "raylet" in names and "ray::" in names:
                    break
                status = client.get(f"/v1/screening-jobs/{job_id}").json()["status"]
                assert status in ("queued", "running"), f"job {status} before Ray was seen: {names}"
                assert time.monotonic() < deadline, f"no Ray worker in 240 s: {names}"
                time.sleep(0.1)
            assert client.get(f"/v1/screening-jobs/{job_id}").json()["status"] == "running"
        seen.update(_below(proc.pid))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        killed_at = time.monotonic()
        while (left := _alive(seen)) and time.monotonic() < killed_at + GONE_WITHIN_S:
            time.sleep(0.2)
        assert not left, f"still running {GONE_WITHIN_S:g} s after kill -9 of the server: {left}"
        gone_s = time.monotonic() - killed_at
        print(f"kill -9: {len(seen)} processes below the server, all gone in {gone_s:.1f} s")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in _alive(seen):  # never leave them to the next test, whatever failed above
            os.kill(pid, signal.SIGKILL)
        log.close()
    text = log_path.read_text()
    assert "nascreen process guard" in text and "is gone; stopped" in text, text[-3000:]
    # the guard finished its work: no record is left for the next start to clean up
    assert not (tmp_path / "mlruns" / f"serve-{port}.processes.json").exists()
    # the port is free again: nothing is still serving on it
    with httpx.Client(timeout=2) as probe, pytest.raises(httpx.TransportError):
        probe.get(f"http://127.0.0.1:{port}/health")


def test_the_next_start_stops_what_a_killed_server_and_guard_left(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The record of a guard that never finished (it was killed with its server): `nascreen serve` on
    that port stops the processes it names that are still alive, says so, and removes the record."""
    import json

    from service.cli.serve import _process_record

    gone = subprocess.Popen([sys.executable, "-c", "pass"])  # a server that no longer exists
    gone_start = process_table()[gone.pid][1]
    gone.wait()
    left = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        settings = ApiSettings(project_root=tmp_path, port=free_port())
        record = tmp_path / "mlruns" / f"serve-{settings.port}.processes.json"
        record.parent.mkdir(parents=True)
        doc = {
            "owner": [gone.pid, gone_start],
            "guard": gone.pid,
            "tracked": {str(left.pid): process_table()[left.pid][1]},
            "names": {str(left.pid): "python sleep (a leftover)"},
        }
        record.write_text(json.dumps(doc))
        with caplog.at_level("WARNING", logger="service.cli.serve"):
            assert _process_record(settings) == record
        assert left.wait(timeout=10) is not None
        assert not record.exists()
        assert f"stopped 1 process(es) a previous server on port {settings.port} left running" in caplog.text
    finally:
        if left.poll() is None:
            left.kill()
            left.wait()
