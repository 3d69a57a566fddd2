"""The process guard with real processes: an owner that starts children and grandchildren (one ignoring
SIGTERM) and its guard, then kill -9 of the owner; and a clean stop that ends the guard."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from screening.process_guard import descendants, process_table, reap_stale

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="the guard reads /proc")

ROOT = Path(__file__).resolve().parents[2]

OWNER = textwrap.dedent(
    """
    import subprocess, sys, time
    from pathlib import Path
    from screening.process_guard import start_guard

    state = Path(sys.argv[2]) if len(sys.argv) > 2 else None
    guard = start_guard(label="test owner", interval_s=0.1, grace_s=0.5, state=state)
    print(guard.pid, flush=True)
    if sys.argv[1] == "stop":
        guard.stop()
        print("stopped", flush=True)
    else:
        stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
        spawn = f"subprocess.Popen([sys.executable, '-c', {stubborn!r}])"
        grandchild = f"import subprocess, sys, time; {spawn}; time.sleep(600)"
        subprocess.Popen([sys.executable, "-c", grandchild])
    time.sleep(600)
    """
)


def _start_owner(mode: str, state: Path | None = None) -> tuple[subprocess.Popen[str], int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-c", OWNER, mode, *([str(state)] if state else [])]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    guard_pid = int(proc.stdout.readline())
    return proc, guard_pid


def _alive(pid: int) -> bool:
    table = process_table()
    return pid in table


def test_kill_9_of_the_owner_stops_its_children_and_grandchildren_even_one_ignoring_sigterm() -> None:
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    owner, guard_pid = _start_owner("kill")
    try:
        deadline = time.monotonic() + 30
        while len(below := descendants([owner.pid], process_table()) - {owner.pid, guard_pid}) < 2:
            assert time.monotonic() < deadline, "the owner's children did not start"
            time.sleep(0.05)
        time.sleep(0.5)  # the guard has recorded them
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait(timeout=10)
        deadline = time.monotonic() + 15
        while any(_alive(p) for p in below) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [p for p in below if _alive(p)], "the guard left the owner's processes running"
        deadline = time.monotonic() + 10
        while _alive(guard_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(guard_pid), "the guard did not exit"
        assert bystander.poll() is None, "the guard stopped a process outside the owner's tree"
        assert owner.stderr is not None
        log = owner.stderr.read()
        assert "nascreen process guard (test owner): owner" in log and "stopped 2 process(es)" in log, log
    finally:
        for pid in descendants([owner.pid], process_table()):
            os.kill(pid, signal.SIGKILL)
        bystander.kill()
        bystander.wait()
        if owner.poll() is None:
            owner.kill()
            owner.wait()


def test_a_clean_stop_ends_the_guard_without_touching_anything_else() -> None:
    owner, guard_pid = _start_owner("stop")
    try:
        assert owner.stdout is not None
        assert owner.stdout.readline().strip() == "stopped"
        assert not _alive(guard_pid)
        assert owner.poll() is None  # the owner itself is untouched
    finally:
        for pid in descendants([owner.pid], process_table()):
            os.kill(pid, signal.SIGKILL)
        owner.kill()
        owner.wait()


def test_when_the_guard_is_killed_too_the_next_start_stops_what_is_left(tmp_path: Path) -> None:
    state = tmp_path / "serve-8000.processes.json"
    owner, guard_pid = _start_owner("kill", state)
    below: set[int] = set()
    try:
        deadline = time.monotonic() + 30
        while len(below := descendants([owner.pid], process_table()) - {owner.pid, guard_pid}) < 2:
            assert time.monotonic() < deadline, "the owner's children did not start"
            time.sleep(0.05)
        time.sleep(0.5)  # the guard has recorded them
        assert reap_stale(state) == []  # the owner is alive: not stale, nothing touched
        assert all(_alive(p) for p in below)
        os.kill(guard_pid, signal.SIGKILL)  # e.g. `pkill -9 -f nascreen`: the guard and its owner
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait(timeout=10)
        time.sleep(1.0)
        assert all(_alive(p) for p in below), "nothing should have stopped them yet"
        stopped = reap_stale(state, grace_s=0.5)
        assert len(stopped) == 2, stopped
        assert not [p for p in below if _alive(p)]
        assert not state.exists()
        assert reap_stale(state) == []  # once only
    finally:
        for pid in below:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if owner.poll() is None:
            owner.kill()
            owner.wait()
