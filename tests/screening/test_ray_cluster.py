"""`nascreen screen` against a real local Ray head node (`ray start --head`, as docs/ray.md tells a user):
the head listens on 127.0.0.1 only; a screen submitted as a Ray Job (`ray job submit`) and one run by a
driver connecting with `--address` both give the single-process table of the same spec.

One head for the module: its own --temp-dir, free ports, its own auth token (RAY_AUTH_TOKEN_PATH, so the
user's ~/.ray/auth_token is neither read nor written) and a new session; the finaliser ends exactly the
processes of that session and their descendants, by pid (`ray stop` would end every Ray on the machine).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.mlflow]

BIN = Path(sys.executable).parent
HEAD_START_TIMEOUT_S = 120
JOB_TIMEOUT_S = 180
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}
# 21 candidates (4 rejected: Mg2+ would need Mn above +4), 5 per chunk: 5 chunks over the head's 2 CPUs
SPEC = """\
name: p2_ray_cluster_test
family: p2_layered_oxide
host: Na0.6Li0.2Mn0.8O2
site: Mn
targets: [capacity_retention]
dopants: [Ru, Ti, Nb, Mg, Zr]
fractions: {start: 0.05, stop: 0.2, step: 0.05}
compensation: {mode: variable_valence, element: Mn, range: [3, 4]}
conditions: {cycles: 100, current_mA_g: 170, voltage_low_V: 2.0, voltage_high_V: 4.5}
ranking: {mode: ucb, objectives: [capacity_retention]}
"""
SCREEN_ARGS = ("--chunk-size", "5", "--top", "3", "--no-mlflow")


@dataclass(frozen=True)
class Head:
    gcs_address: str  # 127.0.0.1:<port>, for --address / RAY_ADDRESS
    dashboard_url: str  # http://127.0.0.1:<port>, the job server
    env: dict[str, str]  # what every `ray ...` command and driver of this head runs with
    pids: frozenset[int]  # the head's processes once started


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a live process from /proc, None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def _session_processes(session_id: int) -> set[int]:
    """The pids of a session and every descendant (job drivers start their own session)."""
    parents: dict[int, int] = {}
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        stat = _stat(pid)
        if stat is None or stat[0] == "Z":
            continue
        parents[pid] = stat[1]
        try:
            if os.getsid(pid) == session_id:
                found.add(pid)
        except OSError:
            continue
    grew = True
    while grew:
        extra = {pid for pid, ppid in parents.items() if ppid in found} - found
        found |= extra
        grew = bool(extra)
    return found


def _alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def _end(pids: set[int]) -> None:
    """SIGTERM, up to 5 s grace (gcs_server may ignore it), then SIGKILL: only these pids."""
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while (pids := {p for p in pids if _alive(p)}) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not pids:
            return


def _listening(pids: set[int]) -> list[tuple[str, int]]:
    """(address, port) of the TCP sockets these processes listen on (/proc/net/tcp{,6}, state 0A)."""
    inodes: set[str] = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    found = []
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] != "0A" or cols[9] not in inodes:
                continue
            hex_ip, hex_port = cols[1].split(":")
            raw = bytes.fromhex(hex_ip)
            # /proc prints the address as 32-bit words in host (little-endian) order
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.append((socket.inet_ntop(family, raw), int(hex_port, 16)))
    return found


@pytest.fixture(scope="module")
def head() -> Iterator[Head]:
    root = Path(tempfile.mkdtemp(prefix="nsray-", dir="/tmp"))  # short: Ray puts unix sockets under it
    token = root / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN_PATH=str(token),
        RAY_USAGE_STATS_ENABLED="0",
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
    )
    gcs, dash, client, agent_http, agent_grpc, runtime_env, metrics = _free_ports(7)
    log = root / "ray_start.log"
    with log.open("wb") as out:
        start = subprocess.Popen(
            [str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
             "--port", str(gcs), "--include-dashboard", "true", "--dashboard-host", "127.0.0.1",
             "--dashboard-port", str(dash), "--ray-client-server-port", str(client),
             "--dashboard-agent-listen-port", str(agent_http), "--dashboard-agent-grpc-port", str(agent_grpc),
             "--runtime-env-agent-port", str(runtime_env), "--metrics-export-port", str(metrics),
             "--num-cpus", "2", "--temp-dir", str(root / "ray"), "--disable-usage-stats"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + HEAD_START_TIMEOUT_S
        while "will now block forever" not in log.read_text(errors="replace"):
            if start.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ray start --head did not come up:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)
        yield Head(
            gcs_address=f"127.0.0.1:{gcs}",
            dashboard_url=f"http://127.0.0.1:{dash}",
            env=env,
            pids=frozenset(_session_processes(start.pid)),
        )
    finally:
        _end(_session_processes(start.pid))
        start.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def spec_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ray-cluster-spec") / "p2_ray_cluster_test.yaml"
    path.write_text(SPEC)
    return path


@pytest.fixture(scope="module")
def local_ranked(
    spec_path: Path, trained_retention_store: Any, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The single-process run of the spec (in this process: no Ray involved)."""
    from service.cli import _register, app

    if not any(c.name == "screen" for c in app.registered_commands):
        _register()
    out = tmp_path_factory.mktemp("ray-cluster-local")
    args = ["screen", str(spec_path), "--executor", "local", "--out", str(out)]
    args += ["--tracking-uri", trained_retention_store.tracking_uri, *SCREEN_ARGS]
    result = CliRunner().invoke(app, args, catch_exceptions=False, terminal_width=200)
    assert result.exit_code == 0, result.output
    return out


def _ray(head: Head, *args: str, timeout: float = 60) -> str:
    done = subprocess.run(
        [str(BIN / "ray"), *args], env=head.env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"ray {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def _job_status(text: str, job_id: str) -> str:
    """The status `ray job status` prints: a line per terminal state, else "Status for job 'id': X"."""
    terminal = {"succeeded": "SUCCEEDED", "was stopped": "STOPPED", "failed": "FAILED"}
    for words, status in terminal.items():
        if f"Job '{job_id}' {words}" in text:
            return status
    match = re.search(rf"Status for job '{re.escape(job_id)}': (\w+)", text)
    assert match, text
    return match.group(1)


def _assert_same_screen(out: Path, local: Path) -> None:
    for kind in ("ranked", "rejected"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(out / f"{kind}.parquet"), pd.read_parquet(local / f"{kind}.parquet")
        )
    assert len(pd.read_parquet(out / "ranked.parquet")) == 17


def test_head_listens_on_loopback_only(head: Head) -> None:
    listening = _listening(set(head.pids))
    ports = {port for _, port in listening}
    assert {int(head.gcs_address.rsplit(":", 1)[1]), int(head.dashboard_url.rsplit(":", 1)[1])} <= ports
    assert {ip for ip, _ in listening} <= LOOPBACK, listening


def test_screen_as_a_ray_job_equals_the_single_process_run(
    head: Head, spec_path: Path, local_ranked: Path, trained_retention_store: Any, tmp_path: Path
) -> None:
    out = tmp_path / "job-out"
    job_id = f"nascreen-test-{secrets.token_hex(4)}"
    _ray(
        head, "job", "submit", "--address", head.dashboard_url, "--submission-id", job_id, "--no-wait", "--",
        "nascreen", "screen", str(spec_path), "--out", str(out),
        "--tracking-uri", trained_retention_store.tracking_uri, *SCREEN_ARGS,
    )  # fmt: skip
    deadline = time.monotonic() + JOB_TIMEOUT_S
    status = ""
    while status not in TERMINAL:
        if time.monotonic() > deadline:
            _ray(head, "job", "stop", "--address", head.dashboard_url, job_id)
            break
        time.sleep(3)
        text = _ray(head, "job", "status", "--address", head.dashboard_url, job_id)
        status = _job_status(text, job_id)
    logs = _ray(head, "job", "logs", "--address", head.dashboard_url, job_id)
    assert status == "SUCCEEDED", logs
    # the driver ran on the head's cluster (RAY_ADDRESS set by the job), not on an embedded Ray
    assert f"executor ray at {head.gcs_address}" in " ".join(logs.split())
    _assert_same_screen(out, local_ranked)


def test_driver_with_address_equals_the_single_process_run(
    head: Head, spec_path: Path, local_ranked: Path, trained_retention_store: Any, tmp_path: Path
) -> None:
    # a user's shell: the auth token, but not Ray's loopback switch (ray_runner sets it for a 127.0.0.1 head)
    env = {k: v for k, v in head.env.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    out = tmp_path / "driver-out"
    done = subprocess.run(
        [str(BIN / "nascreen"), "screen", str(spec_path), "--address", head.gcs_address, "--out", str(out),
         "--tracking-uri", trained_retention_store.tracking_uri, *SCREEN_ARGS],
        env=env, capture_output=True, text=True, timeout=JOB_TIMEOUT_S,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"executor ray at {head.gcs_address}" in " ".join(done.stdout.split())
    _assert_same_screen(out, local_ranked)


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1:6379", True),
        ("localhost:6379", True),
        ("[::1]:6379", True),
        ("192.0.2.2:6379", False),
        ("head.example.org:6379", False),
        ("ray://127.0.0.1:10001", False),  # Ray Client: not a GCS address, left to Ray
    ],
)
def test_loopback_addresses_are_recognised(address: str, loopback: bool) -> None:
    from screening.ray_runner import is_loopback_address

    assert is_loopback_address(address) is loopback


def test_auto_address_resolves_like_ray_init(monkeypatch: pytest.MonkeyPatch) -> None:
    from screening.ray_runner import is_loopback_address

    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    assert is_loopback_address("auto")
    monkeypatch.setenv("RAY_ADDRESS", "192.0.2.2:6379")
    assert not is_loopback_address("auto")
