"""One-item POST /v1/predict of this checkout and of a reference ref, served side by side and asked request
by request in an interleaved order (A B B A ...), so load from other users of the machine hits both alike:
the phases of ``benchmarks/api.py --mode latency`` (all of one server, then all of the other) are several
seconds apart, and on a shared machine that spread was larger than a 0.3 ms change.

    PYTHONPATH=. .venv/bin/python -P benchmarks/api_interleaved.py [--reference-ref main] [--n 6000]
        [--workers 2] [--target ionic_conductivity] [--tracking-uri URI]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]

from benchmarks.api import ITEMS, exported_tree, percentile, server  # noqa: E402

WARM = 200  # requests (both servers) left out of the figures


def interleaved(ports: dict[str, int], body: bytes, n: int) -> dict[str, list[float]]:
    """Milliseconds per request of each server, ``n`` requests in all, keep-alive, order A B B A ..."""
    conns = {name: http.client.HTTPConnection("127.0.0.1", port) for name, port in ports.items()}
    names = list(conns)
    ms: dict[str, list[float]] = {name: [] for name in names}
    answers: dict[str, bytes] = {}
    for i in range(n):
        name = names[(i + i // 2) % 2]
        t0 = time.perf_counter()
        conns[name].request("POST", "/v1/predict", body, {"content-type": "application/json"})
        response = conns[name].getresponse()
        answers[name] = response.read()
        if response.status != 200:
            raise SystemExit(f"{name}: HTTP {response.status}: {answers[name][:300]!r}")
        if i >= WARM:
            ms[name].append((time.perf_counter() - t0) * 1000.0)
    for conn in conns.values():
        conn.close()
    print(f"answers of the two servers equal (bytes): {'yes' if len(set(answers.values())) == 1 else 'NO'}")
    return ms


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reference-ref", default="main")
    parser.add_argument("--n", type=int, default=6000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--target", default="ionic_conductivity", choices=sorted(ITEMS))
    parser.add_argument("--tracking-uri", default=None, help="default: the project store under mlruns/")
    parser.add_argument("--startup-timeout", type=float, default=240.0)
    args = parser.parse_args()
    from models.tracking import default_tracking_uri

    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(ROOT)
    body = json.dumps({"items": [ITEMS[args.target]], "targets": [args.target]}).encode()
    print(f"load average {os.getloadavg()[0]:.2f}")
    with (
        exported_tree(args.reference_ref) as tree,
        server(uri, args.target, 1000, args.workers, {}, args.startup_timeout, tree) as (ref, _),
        server(uri, args.target, 1000, args.workers, {}, args.startup_timeout) as (new, _),
    ):
        ports = {f"previous ({tree.name})": int(ref.rsplit(":", 1)[1]), "current": int(new.rsplit(":", 1)[1])}
        ms = interleaved(ports, body, args.n)
    for name, v in ms.items():
        print(
            f"{name:<20} n={len(v)} p50 {percentile(v, 50):6.2f}  p90 {percentile(v, 90):6.2f}  "
            f"p99 {percentile(v, 99):6.2f}  mean {statistics.fmean(v):6.2f} ms"
        )
    (a, b) = ms.values()
    print(
        f"previous / current, mean: {statistics.fmean(a) / statistics.fmean(b):.2f}x (> 1: current "
        f"faster); load {os.getloadavg()[0]:.2f}"
    )
    print("(goal, quiet machine: one item p50 <= 4 ms, p99 <= 10 ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
