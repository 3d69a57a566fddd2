"""HTTP API latency and throughput against a real server on loopback.

Starts `nascreen serve` in a subprocess on 127.0.0.1 (a free port), waits until /health is ready, then:
- single-item POST /v1/predict: p50 / p99 latency over --n-single requests (keep-alive client);
- 1,000-item batches: items/s over --n-batches requests;
- references measured in the same run: GET /health over HTTP (the HTTP floor) and the Predictor called
  in-process on the same single item (the model floor); ratios are printed against them.
Bounded: every phase stops at --n or --time-budget seconds, whichever comes first.
Goal (issue 5): p50 <= 15 ms, p99 <= 60 ms for one item on the project machine.

    .venv/bin/python benchmarks/api.py [--tracking-uri URI] [--target ionic_conductivity]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ITEMS = {
    "ionic_conductivity": {"formula": "Na3Zr2Si2PO12"},
    "capacity_retention": {
        "formula": "P2-Na0.67MnO2",
        "cycles": 100,
        "current_mA_g": 20,
        "voltage_low_V": 2.0,
        "voltage_high_V": 4.0,
    },
    "average_voltage": {"formula": "NaMnO2"},
}
BATCH_FORMULAS = {
    "ionic_conductivity": ["Na3Zr2Si2PO12", "Na3.4Zr2Si2.4P0.6O12", "Na3Zr1.9Hf0.1Si2PO12", "Na2ZrCl6"],
    "capacity_retention": ["P2-Na0.67MnO2", "P2-Na0.67Mn0.8Ni0.2O2", "NaNi0.5Mn0.5O2"],
    "average_voltage": ["NaMnO2", "NaFePO4", "NaNi0.5Mn0.5O2"],
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def timed(fn: Callable[[], object], n: int, budget_s: float) -> list[float]:
    out: list[float] = []
    deadline = time.perf_counter() + budget_s
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000.0)
        if time.perf_counter() > deadline:
            break
    return out


def summary(name: str, ms: list[float]) -> str:
    return (
        f"{name:<34} n={len(ms):>5}  p50={percentile(ms, 50):7.2f} ms  p90={percentile(ms, 90):7.2f} ms  "
        f"p99={percentile(ms, 99):7.2f} ms  mean={statistics.fmean(ms):7.2f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tracking-uri", default=None, help="default: the project store under mlruns/")
    parser.add_argument("--target", default="ionic_conductivity", choices=sorted(ITEMS))
    parser.add_argument("--n-single", type=int, default=1000)
    parser.add_argument("--n-batches", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--time-budget", type=float, default=60.0, help="seconds per phase (cap)")
    parser.add_argument("--startup-timeout", type=float, default=180.0)
    args = parser.parse_args()

    from models.tracking import default_tracking_uri

    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(ROOT)
    port = free_port()
    scratch = tempfile.TemporaryDirectory(prefix="nascreen-bench-")  # job store of the benchmark server
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "NASCREEN_TARGETS": args.target,
        "NASCREEN_JOB_EXECUTOR": "local",
        "NASCREEN_MAX_ITEMS_PER_REQUEST": str(max(1000, args.batch_size)),
        "NASCREEN_MAX_BODY_BYTES": str(8 * 1024 * 1024),
        "PYTHONPATH": str(ROOT),
    }
    cmd = [
        sys.executable, "-c", "from service.cli import main; main()", "serve",
        "--host", "127.0.0.1", "--port", str(port), "--tracking-uri", uri,
        "--project-root", scratch.name, "--log-level", "warning",
    ]  # fmt: skip
    # server output goes to a file: a pipe nobody drains would block the server once full
    log_path = Path(scratch.name) / "server.log"
    log_file = log_path.open("wb")
    server = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=base, timeout=60.0) as client:
            t0 = time.perf_counter()
            while True:
                if server.poll() is not None:
                    err = log_path.read_text(errors="replace")
                    print(f"server exited during start-up:\n{err[-3000:]}", file=sys.stderr)
                    return 1
                try:
                    health = client.get("/health").json()
                    break
                except httpx.TransportError:
                    if time.perf_counter() - t0 > args.startup_timeout:
                        print("server did not start in time", file=sys.stderr)
                        return 1
                    time.sleep(0.2)
            startup = time.perf_counter() - t0
            if args.target not in health["models"]:
                print(
                    f"no {args.target} champion in {uri}: run `nascreen train --target {args.target}` first "
                    f"({health['missing']})",
                    file=sys.stderr,
                )
                return 2
            version = health["models"][args.target]
            print(f"server up in {startup:.1f} s; {args.target} champion version {version}; store {uri}")

            single = {"items": [ITEMS[args.target]], "targets": [args.target]}

            def predict_one() -> None:
                r = client.post("/v1/predict", json=single)
                r.raise_for_status()

            timed(predict_one, 30, args.time_budget)  # warm-up (lazy imports, caches, connection)
            health_ms = timed(lambda: client.get("/health").raise_for_status(), 300, args.time_budget)
            print(summary("GET /health (HTTP floor)", health_ms), flush=True)
            single_ms = timed(predict_one, args.n_single, args.time_budget)
            print(summary("POST /v1/predict, 1 item", single_ms), flush=True)

            formulas = BATCH_FORMULAS[args.target]
            template = ITEMS[args.target]
            batch = {
                "items": [
                    {**template, "formula": formulas[i % len(formulas)]} for i in range(args.batch_size)
                ],
                "targets": [args.target],
            }

            def predict_batch() -> None:
                r = client.post("/v1/predict", json=batch)
                r.raise_for_status()
                assert len(r.json()["results"]) == args.batch_size

            batch_ms = timed(predict_batch, args.n_batches, args.time_budget)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log_file.close()
        scratch.cleanup()

    # The model floor: the same Predictor in this process, no HTTP, no JSON.
    import pandas as pd

    from models.predictor import load_predictors
    from models.targets import TargetName
    from service.api.compute import SingleThreadedCompute

    predictor = load_predictors([TargetName(args.target)], uri)[TargetName(args.target)]
    frame = pd.DataFrame([ITEMS[args.target]])
    with SingleThreadedCompute()():  # the same per-request limits the server applies
        timed(lambda: predictor.predict_frame(frame), 30, args.time_budget)
        direct_ms = timed(lambda: predictor.predict_frame(frame), min(args.n_single, 300), args.time_budget)

    print(summary("Predictor.predict_frame, 1 row", direct_ms))
    print(summary(f"POST /v1/predict, {args.batch_size} items", batch_ms))
    p50, p99 = percentile(single_ms, 50), percentile(single_ms, 99)
    throughput = args.batch_size / (statistics.fmean(batch_ms) / 1000.0)
    print(f"single item: p50 {p50:.2f} ms (goal <= 15), p99 {p99:.2f} ms (goal <= 60)")
    print(
        f"ratio p50 API / in-process predictor: {p50 / percentile(direct_ms, 50):.2f}x; "
        f"API overhead over the model: {p50 - percentile(direct_ms, 50):.2f} ms"
    )
    print(f"batch throughput: {throughput:,.0f} items/s ({args.batch_size}-item requests)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
