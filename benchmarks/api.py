"""HTTP API latency, throughput and behaviour under concurrent load, against real `nascreen serve`
subprocesses on loopback (free ports). Every figure is printed next to a reference from the same run.

latency (one keep-alive client, the server with its default workers):
- single-item POST /v1/predict p50/p99, 1,000-item batches in items/s;
- references: GET /health over HTTP (the HTTP floor) and the Predictor called in-process on the same
  input (the model floor, with the server's per-request thread limits);
- equality: the served values are compared with the in-process predictor (bit-for-bit, ``==``).

concurrent (--clients keep-alive clients, default 8, each sending a mix of one-item predicts and
rank-dopants requests as fast as it gets answers, plus one prober sending GET /health every 20 ms):
- requests/s in total, p50/p99 per kind and the /health p99;
- reference in the same run: the previous serving mode (one process, small predicts computed on the event
  loop: `--workers 1` with NASCREEN_INLINE_MAX_ITEMS=16). Both servers are started first, then load phases
  alternate reference / current for --repeats rounds; medians of the rounds are reported with the ratio.

Issue 13 goals (quiet 2-core machine): one item p50 <= 4 ms, p99 <= 10 ms; batches >= 50,000 items/s;
8 concurrent clients >= 300 one-item predicts/s with p99 <= 50 ms and /health p99 <= 20 ms.

    .venv/bin/python benchmarks/api.py [--mode latency|concurrent|both] [--workers N] [--duration 20]
        [--repeats 2] [--clients 8] [--tracking-uri URI] [--target ionic_conductivity] [--reference-ref REF]

latency with --reference-ref REF: the code at REF and this checkout served side by side, alternating
rounds; batches timed with the client's JSON work (as above) and as raw bytes (the server and HTTP alone).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, this folder comes first on sys.path and benchmarks/featurize.py would shadow the
# featurize package: put the project root first instead.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]

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
# batches of distinct inputs (no repeats for the predictor to answer once): a dopant fraction x stepped
# per item in (0, 0.1]
DISTINCT_FORMULAS = {
    "ionic_conductivity": "Na3Zr{a:.5f}Hf{x:.5f}Si2PO12",
    "capacity_retention": "P2-Na0.67Mn{a:.5f}Ni{x:.5f}O2",
    "average_voltage": "NaMn{a:.5f}Fe{x:.5f}O2",
}
DISTINCT_BASE = {"ionic_conductivity": 2.0, "capacity_retention": 0.67, "average_voltage": 1.0}


def distinct_items(target: str, n: int) -> list[dict[str, Any]]:
    base = DISTINCT_BASE[target]
    return [
        {**ITEMS[target], "formula": DISTINCT_FORMULAS[target].format(a=base - x, x=x)}
        for x in (0.1 * (i + 1) / n for i in range(n))
    ]


# a small synchronous ranking of the conductivity family (12 candidates)
RANK_BODY = {
    "family": "nasicon",
    "host": "Na3Zr2Si2PO12",
    "site": "Zr",
    "dopants": ["Hf", "Ti", "Sn", "Nb"],
    "fractions": [0.05, 0.1, 0.2],
    "compensation": "na_content",
    "ranking": {"mode": "ucb", "kappa": 1.0},
    "top_k": 10,
}
# a ranking relative to the host on the retention model (P(better), one anchor): the relative path
RANK_RELATIVE_BODY = {
    "family": "p2_layered_oxide",
    "host": "Na0.6Li0.2Mn0.8O2",
    "site": "Mn",
    "dopants": ["Ru", "Ti", "Sn", "Zr"],
    "fractions": [0.05, 0.1, 0.15],
    "compensation": {"mode": "variable_valence", "element": "Mn", "range": [3, 4]},
    "conditions": {"cycles": 100, "current_mA_g": 170, "voltage_low_V": 2.0, "voltage_high_V": 4.5},
    "targets": ["capacity_retention"],
    "ranking": {"mode": "value", "objectives": {"capacity_retention": {"by": "p_better"}}},
    "anchors": [
        {"formula": "Na0.6Li0.2Mn0.8O2", "cycles": 100, "current_mA_g": 170, "voltage_low_V": 2.0,
         "voltage_high_V": 4.5, "measured": 45.5}
    ],
    "top_k": 20,
}  # fmt: skip
RANK_BODIES = {"nasicon (ucb)": RANK_BODY, "p2 relative (p_better)": RANK_RELATIVE_BODY}
RANK_EVERY = 5  # each client sends one rank-dopants request per 5 requests (the rest: one-item predicts)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
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


@contextmanager
def server(
    uri: str,
    target: str,
    batch_size: int,
    workers: int,
    extra_env: dict[str, str],
    timeout: float,
    tree: Path = ROOT,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """A `nascreen serve` subprocess on a free loopback port running the code in ``tree`` (default: this
    checkout; ``exported_tree`` gives an earlier commit's); yields (base URL, /health body). ``target`` may
    be several, comma-separated (the first one is checked to be loaded)."""
    port = free_port()
    scratch = tempfile.TemporaryDirectory(prefix="nascreen-bench-")  # job store of the benchmark server
    env = {
        **os.environ,
        "NASCREEN_TARGETS": target,
        "NASCREEN_JOB_EXECUTOR": "local",
        "NASCREEN_MAX_ITEMS_PER_REQUEST": str(max(1000, batch_size)),
        "NASCREEN_MAX_BODY_BYTES": str(8 * 1024 * 1024),
        "PYTHONPATH": str(tree),
        **extra_env,
    }
    cmd = [
        sys.executable, "-c", "from service.cli import main; main()", "serve",
        "--host", "127.0.0.1", "--port", str(port), "--tracking-uri", uri,
        "--project-root", scratch.name, "--log-level", "warning", "--workers", str(workers),
    ]  # fmt: skip
    # server output goes to a file: a pipe nobody drains would block the server once full
    log_path = Path(scratch.name) / "server.log"
    log_file = log_path.open("wb")
    proc = subprocess.Popen(cmd, env=env, cwd=tree, stdout=log_file, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        t0 = time.perf_counter()
        with httpx.Client(base_url=base, timeout=60.0) as client:
            while True:
                if proc.poll() is not None:
                    err = log_path.read_text(errors="replace")
                    raise RuntimeError(f"server exited during start-up:\n{err[-3000:]}")
                try:
                    health = client.get("/health").json()
                    if health.get("ready"):
                        break
                except httpx.TransportError:
                    pass
                if time.perf_counter() - t0 > timeout:
                    raise RuntimeError("server did not start in time")
                time.sleep(0.2)
            # with several workers, the first one up answers /health: wait until each has loaded (a
            # worker that is still loading does not accept connections yet, so probe a while)
            time.sleep(1.0 if workers == 1 else 3.0)
        first = target.split(",")[0]
        if first not in health["models"]:
            raise SystemExit(
                f"no {first} champion in {uri}: run `nascreen train --target {first}` first "
                f"({health['missing']})"
            )
        code = "" if tree == ROOT else f", code of {tree.name}"
        print(
            f"server ({workers} worker{'s' * (workers > 1)}, {extra_env or 'defaults'}{code}) up in "
            f"{time.perf_counter() - t0:.1f} s; {first} v{health['models'][first]}",
            flush=True,
        )
        yield base, health
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log_file.close()
        scratch.cleanup()


# ---------------------------------------------------------------------------------------- latency mode
PAIRS = (("value", "prediction"), ("std", "std"), ("lower_90", "lower_90"), ("upper_90", "upper_90"))


def served_mismatches(served: dict[str, Any], want: Any, target: str) -> int:
    """Rows of a served /v1/predict answer that differ from the in-process ``predict_frame`` (exactly)."""
    bad = 0
    for item, (_, row) in zip(served["results"], want.iterrows(), strict=True):
        got = item["predictions"][target]
        bad += any(got[k] != float(row[c]) for k, c in PAIRS)
        bad += got["in_domain"] != bool(row["in_domain"]) or got["domain_reason"] != row["domain_reason"]
    return bad


def latency(args: argparse.Namespace, uri: str) -> None:
    target = args.target
    single = {"items": [ITEMS[target]], "targets": [target]}
    formulas = BATCH_FORMULAS[target]
    batch = {
        "items": [{**ITEMS[target], "formula": formulas[i % len(formulas)]} for i in range(args.batch_size)],
        "targets": [target],
    }
    distinct = {"items": distinct_items(target, args.batch_size), "targets": [target]}
    with (
        server(uri, target, args.batch_size, args.workers, {}, args.startup_timeout) as (base, _),
        httpx.Client(base_url=base, timeout=60.0) as client,
    ):

        def predict_one() -> None:
            client.post("/v1/predict", json=single).raise_for_status()

        timed(predict_one, 30, args.time_budget)  # warm-up (lazy imports, caches, connection)
        health_ms = timed(lambda: client.get("/health").raise_for_status(), 300, args.time_budget)
        single_ms = timed(predict_one, args.n_single, args.time_budget)
        served_one = client.post("/v1/predict", json=single).json()

        def predict_batch() -> None:
            r = client.post("/v1/predict", json=batch)
            r.raise_for_status()
            assert len(r.json()["results"]) == args.batch_size

        batch_ms = timed(predict_batch, args.n_batches, args.time_budget)
        served_batch = client.post("/v1/predict", json=batch).json()

        def predict_distinct() -> None:
            client.post("/v1/predict", json=distinct).raise_for_status()

        distinct_ms = timed(predict_distinct, args.n_batches, args.time_budget)
        served_distinct = client.post("/v1/predict", json=distinct).json()

    # The model floor: the same Predictor in this process, no HTTP, no JSON.
    import pandas as pd

    from models.predictor import load_predictors
    from models.targets import TargetName
    from service.api.compute import SingleThreadedCompute

    predictor = load_predictors([TargetName(target)], uri)[TargetName(target)]
    # the previous predictor, same run: a second copy whose domain runs sklearn's search per neighbour set
    # and that answers every row on its own (no deduplication of repeated rows)
    previous = load_predictors([TargetName(target)], uri)[TargetName(target)]
    previous.deduplicate = False
    previous_domain = getattr(previous.model, "domain_", None)
    if previous_domain is not None and hasattr(previous_domain, "share_neighbour_search"):
        previous_domain.share_neighbour_search(False)
    frame = pd.DataFrame([ITEMS[target]])
    batch_frame = pd.DataFrame(batch["items"])
    distinct_frame = pd.DataFrame(distinct["items"])
    import gc

    gc.collect()
    gc.freeze()  # as the server does after loading (service.api.app.freeze_startup_heap)
    n_direct = min(args.n_single, 300)
    with SingleThreadedCompute()():  # the same per-request limits the server applies
        for p in (predictor, previous):
            timed(lambda p=p: p.predict_frame(frame), 30, args.time_budget)
        direct_ms: list[float] = []
        previous_ms: list[float] = []
        for _ in range(n_direct):  # interleaved, so load from other users hits both alike
            direct_ms += timed(lambda: predictor.predict_frame(frame), 1, args.time_budget)
            previous_ms += timed(lambda: previous.predict_frame(frame), 1, args.time_budget)
        direct_batch_ms: list[float] = []
        previous_batch_ms: list[float] = []
        for _ in range(args.n_batches):
            direct_batch_ms += timed(lambda: predictor.predict_frame(batch_frame), 1, args.time_budget)
            previous_batch_ms += timed(lambda: previous.predict_frame(batch_frame), 1, args.time_budget)
        direct_distinct_ms: list[float] = []
        previous_distinct_ms: list[float] = []
        for _ in range(args.n_batches):
            direct_distinct_ms += timed(lambda: predictor.predict_frame(distinct_frame), 1, args.time_budget)
            previous_distinct_ms += timed(lambda: previous.predict_frame(distinct_frame), 1, args.time_budget)
        want_distinct = predictor.predict_frame(distinct_frame)
        previous_distinct = previous.predict_frame(distinct_frame)
        want_one = predictor.predict_frame(frame)
        want_batch = predictor.predict_frame(batch_frame)
        previous_one = previous.predict_frame(frame)
        previous_batch = previous.predict_frame(batch_frame)

    def mismatches(served: dict[str, Any], want: pd.DataFrame) -> int:
        return served_mismatches(served, want, target)

    print(summary("GET /health (HTTP floor)", health_ms))
    print(summary("previous predictor, 1 row", previous_ms))
    print(summary("Predictor.predict_frame, 1 row", direct_ms))
    print(summary("POST /v1/predict, 1 item", single_ms))
    print(summary(f"previous predictor, {args.batch_size} rows", previous_batch_ms))
    print(summary(f"Predictor.predict_frame, {args.batch_size} rows", direct_batch_ms))
    print(summary(f"POST /v1/predict, {args.batch_size} items", batch_ms))
    print(summary(f"previous predictor, {args.batch_size} distinct", previous_distinct_ms))
    print(summary(f"Predictor, {args.batch_size} distinct rows", direct_distinct_ms))
    print(summary(f"POST /v1/predict, {args.batch_size} distinct", distinct_ms))
    p50, p99 = percentile(single_ms, 50), percentile(single_ms, 99)
    direct50 = percentile(direct_ms, 50)
    throughput = args.batch_size / (statistics.fmean(batch_ms) / 1000.0)
    direct_tp = args.batch_size / (statistics.fmean(direct_batch_ms) / 1000.0)
    print(f"single item: p50 {p50:.2f} ms (goal <= 4), p99 {p99:.2f} ms (goal <= 10)")
    print(
        f"  vs in-process predictor p50 {direct50:.2f} ms: {p50 / direct50:.2f}x, "
        f"overhead {p50 - direct50:.2f} ms"
    )
    print(
        f"batch throughput: {throughput:,.0f} items/s (goal >= 50,000) vs in-process predictor "
        f"{direct_tp:,.0f} items/s ({throughput / direct_tp:.2f}x)"
    )
    n_items = args.batch_size
    distinct_tp = n_items / (statistics.fmean(distinct_ms) / 1000.0)
    direct_distinct_tp = n_items / (statistics.fmean(direct_distinct_ms) / 1000.0)
    previous_distinct_tp = n_items / (statistics.fmean(previous_distinct_ms) / 1000.0)
    print(
        f"batch of {n_items} distinct items (the batch above has {len(formulas)} formulas repeated): served "
        f"{distinct_tp:,.0f} items/s; in-process {direct_distinct_tp:,.0f} vs previous predictor "
        f"{previous_distinct_tp:,.0f} items/s ({direct_distinct_tp / previous_distinct_tp:.2f}x)"
    )
    prev50 = percentile(previous_ms, 50)
    prev_tp = args.batch_size / (statistics.fmean(previous_batch_ms) / 1000.0)
    print(
        f"in-process predictor vs previous predictor (same run, interleaved): 1 row p50 {direct50:.2f} vs "
        f"{prev50:.2f} ms ({prev50 / direct50:.2f}x); {args.batch_size} rows {direct_tp:,.0f} vs "
        f"{prev_tp:,.0f} items/s ({direct_tp / prev_tp:.2f}x)"
    )
    # The previous predictor is the reference of the outputs: compared exactly here (the stated tolerance
    # of models/knn.py and of deduplication, tests/models/test_predictor.py, is not needed on these rows).
    drift = 0
    for new_out, old_out in (
        (want_one, previous_one),
        (want_batch, previous_batch),
        (want_distinct, previous_distinct),
    ):
        drift += int((new_out["in_domain"] != old_out["in_domain"]).sum())
        drift += int((new_out["domain_reason"] != old_out["domain_reason"]).sum())
        for c in ("prediction", "std", "lower_90", "upper_90"):
            drift += int((new_out[c] != old_out[c]).sum())
    print(f"in-process outputs == previous predictor (exact): {'yes' if not drift else f'NO ({drift})'}")
    bad = (
        mismatches(served_one, want_one)
        + mismatches(served_batch, want_batch)
        + mismatches(served_distinct, want_distinct)
    )
    print(
        f"served outputs == in-process predictor (exact): {'yes' if not bad else f'NO ({bad} rows differ)'}"
    )


def latency_against(args: argparse.Namespace, uri: str) -> None:
    """``--mode latency --reference-ref REF``: the code at REF and this checkout served side by side (same
    models, same workers), phases alternating for --repeats rounds: one item, 1,000 items repeated and
    distinct. Each batch is timed as the latency mode does (httpx ``json=`` and ``r.json()``: the client's
    own JSON work included) and as raw bytes (a pre-encoded body, the answer read but not parsed: what the
    server and HTTP cost). The two servers' answers are compared exactly."""
    target = args.target
    formulas = BATCH_FORMULAS[target]
    bodies = {
        "1 item": {"items": [ITEMS[target]], "targets": [target]},
        f"{args.batch_size} repeated": {
            "items": [
                {**ITEMS[target], "formula": formulas[i % len(formulas)]} for i in range(args.batch_size)
            ],
            "targets": [target],
        },
        f"{args.batch_size} distinct": {
            "items": distinct_items(target, args.batch_size),
            "targets": [target],
        },
    }
    ms: dict[tuple[str, str, str], list[float]] = {}
    answers: dict[tuple[str, str], Any] = {}
    with exported_tree(args.reference_ref) as tree:
        names = (f"previous ({tree.name})", "current")
        with (
            server(uri, target, args.batch_size, args.workers, {}, args.startup_timeout, tree) as (ref, _),
            server(uri, target, args.batch_size, args.workers, {}, args.startup_timeout) as (new, _),
        ):
            clients = {
                n: httpx.Client(base_url=b, timeout=60.0) for n, b in zip(names, (ref, new), strict=True)
            }
            for r in range(args.repeats):
                for name, client in clients.items():
                    for kind, body in bodies.items():
                        n = args.n_single if kind == "1 item" else args.n_batches
                        for how, ms_ in _latency_phase(
                            client, body, n, args.time_budget, warm=r == 0
                        ).items():
                            ms.setdefault((name, kind, how), []).extend(ms_)
                        answers[name, kind] = client.post("/v1/predict", json=body).json()
                    print(f"round {r + 1} {name}: load {os.getloadavg()[0]:.2f}", flush=True)
            for client in clients.values():
                client.close()
    _latency_report(args, names, bodies, ms, answers)


def _latency_phase(
    client: httpx.Client, body: dict[str, Any], n: int, budget: float, warm: bool
) -> dict[str, list[float]]:
    raw = json.dumps(body).encode()
    headers = {"content-type": "application/json"}

    def as_latency_mode() -> None:
        r = client.post("/v1/predict", json=body)
        r.raise_for_status()
        assert len(r.json()["results"]) == len(body["items"])

    def raw_bytes() -> None:
        client.post("/v1/predict", content=raw, headers=headers).raise_for_status()

    if warm:
        timed(as_latency_mode, 5 if len(body["items"]) > 1 else 30, budget)
    return {"json": timed(as_latency_mode, n, budget), "raw": timed(raw_bytes, n, budget)}


def _latency_report(
    args: argparse.Namespace,
    names: tuple[str, str],
    bodies: dict[str, Any],
    ms: dict[tuple[str, str, str], list[float]],
    answers: dict[tuple[str, str], Any],
) -> None:
    prev, cur = names
    print(f"\n{args.repeats} alternating rounds, --workers {args.workers}; load now {os.getloadavg()[0]:.2f}")
    for kind, body in bodies.items():
        n_items = len(body["items"])
        for how, label in (("json", "client json= / r.json()"), ("raw", "raw bytes, not parsed")):
            a, b = ms[prev, kind, how], ms[cur, kind, how]
            line = f"{kind:<14} {label:<24} "
            for name, v in ((prev, a), (cur, b)):
                tp = n_items / (statistics.fmean(v) / 1000.0)
                line += f"{name}: p50 {percentile(v, 50):6.2f} p99 {percentile(v, 99):6.2f} ms"
                line += f" {tp:>9,.0f} items/s | " if n_items > 1 else " | "
            ratio = statistics.fmean(a) / statistics.fmean(b)
            print(line + f"{ratio:.2f}x")
        same = answers[prev, kind] == answers[cur, kind]
        print(f"{kind:<14} answers of the two servers equal (exact): {'yes' if same else 'NO'}")
    print("(goals, quiet machine: one item p50 <= 4 ms, p99 <= 10 ms; batches >= 50,000 items/s)")


# ------------------------------------------------------------------------------------- concurrent mode
class Client(threading.Thread):
    """One keep-alive HTTP/1.1 connection sending requests back to back until ``stop`` is set."""

    def __init__(self, port: int, plan: list[tuple[str, str, bytes]], stop: threading.Event, pause_s: float):
        super().__init__(daemon=True)
        self.port, self.plan, self.stop, self.pause_s = port, plan, stop, pause_s
        self.ms: dict[str, list[float]] = {kind: [] for kind, _, _ in plan}
        self.errors = 0

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Content-Type": "application/json"}
        i = 0
        while not self.stop.is_set():
            kind, path, body = self.plan[i % len(self.plan)]
            i += 1
            t0 = time.perf_counter()
            try:
                if body:
                    conn.request("POST", path, body=body, headers=headers)
                else:
                    conn.request("GET", path)
                resp = conn.getresponse()
                resp.read()
                ok = resp.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            if ok:
                self.ms[kind].append((time.perf_counter() - t0) * 1000.0)
            else:
                self.errors += 1
            if self.pause_s:
                self.stop.wait(self.pause_s)
        conn.close()


def load_phase(
    base: str, target: str, clients: int, duration: float, rank_every: int = RANK_EVERY
) -> dict[str, Any]:
    """``clients`` closed-loop clients for ``duration`` s; each sends one rank-dopants request per
    ``rank_every`` requests (0: one-item predicts only)."""
    port = int(base.rsplit(":", 1)[1])
    one = json.dumps({"items": [ITEMS[target]], "targets": [target]}).encode()
    rank = json.dumps(RANK_BODY).encode()
    plan = [("predict", "/v1/predict", one)]
    if rank_every > 0:
        plan = plan * (rank_every - 1) + [("rank", "/v1/rank-dopants", rank)]
    stop = threading.Event()
    workers = [Client(port, plan[k % len(plan) :] + plan[: k % len(plan)], stop, 0.0) for k in range(clients)]
    prober = Client(port, [("health", "/health", b"")], stop, 0.02)
    t0 = time.perf_counter()
    for w in [*workers, prober]:
        w.start()
    time.sleep(duration)
    stop.set()
    for w in [*workers, prober]:
        w.join(timeout=120)
    elapsed = time.perf_counter() - t0
    ms: dict[str, list[float]] = {"predict": [], "rank": [], "health": prober.ms["health"]}
    for w in workers:
        for kind in ("predict", "rank"):
            ms[kind].extend(w.ms.get(kind, []))
    n = len(ms["predict"]) + len(ms["rank"])
    return {
        "req_s": n / elapsed,
        "predict_s": len(ms["predict"]) / elapsed,
        "errors": sum(w.errors for w in workers) + prober.errors,
        **{f"{k}_p50": percentile(v, 50) for k, v in ms.items()},
        **{f"{k}_p99": percentile(v, 99) for k, v in ms.items()},
    }


def concurrent(args: argparse.Namespace, uri: str) -> None:
    if args.reference_ref is None:
        concurrent_rounds(args, uri, ROOT, {"NASCREEN_INLINE_MAX_ITEMS": "16"}, 1)
        return
    with exported_tree(args.reference_ref) as tree:
        concurrent_rounds(args, uri, tree, {}, args.workers)


def concurrent_rounds(
    args: argparse.Namespace, uri: str, ref_tree: Path, reference_env: dict[str, str], ref_workers: int
) -> None:
    """Reference and current server up together, load phases alternating; medians of the rounds."""
    target = "ionic_conductivity"  # rank-dopants on NASICON needs the conductivity champion
    with (
        server(uri, target, args.batch_size, ref_workers, reference_env, args.startup_timeout, ref_tree) as (
            ref_base,
            _,
        ),
        server(uri, target, args.batch_size, args.workers, {}, args.startup_timeout) as (new_base, _),
    ):
        for base in (ref_base, new_base):  # warm-up: lazy imports and caches in every worker
            load_phase(base, target, args.clients, 3.0, args.rank_every)
        rounds: dict[str, list[dict[str, Any]]] = {"reference": [], "current": []}
        for r in range(args.repeats):
            for name, base in (("reference", ref_base), ("current", new_base)):
                res = load_phase(base, target, args.clients, args.duration, args.rank_every)
                rounds[name].append(res)
                print(
                    f"round {r + 1} {name:>9}: {res['req_s']:6.1f} req/s "
                    f"({res['predict_s']:.1f} predicts/s)  "
                    f"predict p50/p99 {res['predict_p50']:.1f}/{res['predict_p99']:.1f} ms  "
                    f"rank {res['rank_p50']:.1f}/{res['rank_p99']:.1f} ms  "
                    f"/health p99 {res['health_p99']:.1f} ms  errors {res['errors']}",
                    flush=True,
                )
    med = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in rounds.items()}
    ref, cur = med["reference"], med["current"]
    mix = (
        f"1 in {args.rank_every} requests rank-dopants, the rest one-item predicts"
        if args.rank_every > 0
        else "one-item predicts only"
    )
    print(
        f"\n{args.clients} concurrent clients ({mix}) + /health every 20 ms, "
        f"{args.duration:.0f} s x {args.repeats} rounds, medians; "
        f"current = --workers {args.workers}, reference = "
        + (
            f"the code at {args.reference_ref}, same workers"
            if args.reference_ref
            else "1 worker computing small predicts on the event loop"
        )
    )
    rows = [
        ("requests/s", "req_s", True),
        ("one-item predicts/s", "predict_s", True),
        ("predict p50 ms", "predict_p50", False),
        ("predict p99 ms", "predict_p99", False),
        ("rank p50 ms", "rank_p50", False),
        ("rank p99 ms", "rank_p99", False),
        ("/health p50 ms", "health_p50", False),
        ("/health p99 ms", "health_p99", False),
        ("errors", "errors", False),
    ]
    ratio_table(["reference", "current"], [(label, [ref[k], cur[k]], up) for label, k, up in rows])
    print("(ratio > 1: current better; goals: >= 300 predicts/s, predict p99 <= 50 ms, /health p99 <= 20 ms)")


def ratio_table(columns: list[str], rows: list[tuple[str, list[float], bool]], digits: int = 1) -> None:
    """One row per figure, one column per server, then the ratio of the last column to the first (> 1: the
    last is better; ``True`` in a row: higher is better)."""
    label_w = max(22, *(len(label) + 2 for label, _, _ in rows))
    col_w = max(12, *(len(c) + 2 for c in columns))
    print(f"{'':<{label_w}}" + "".join(f"{c:>{col_w}}" for c in columns) + f"{'ratio':>9}")
    for label, values, higher_better in rows:
        a, b = values[0], values[-1]
        ratio = (b / a if higher_better else a / b) if a and b else float("nan")
        print(f"{label:<{label_w}}" + "".join(f"{v:>{col_w}.{digits}f}" for v in values) + f"{ratio:>8.2f}x")


# ------------------------------------------------------------------------------------------- http mode
HTTP_SPECS = "h11/asyncio,httptools/uvloop"  # main's serving stack (h11 on asyncio), then the candidate


def http_env(spec: str) -> dict[str, str]:
    """The server environment of a ``protocol[/loop]`` spec (``nascreen serve --http/--loop``)."""
    protocol, _, loop = spec.partition("/")
    return {"NASCREEN_HTTP_PROTOCOL": protocol, **({"NASCREEN_EVENT_LOOP": loop} if loop else {})}


def one_client(base: str, target: str, n_single: int, budget_s: float) -> dict[str, Any]:
    """One keep-alive client: GET /health (the HTTP floor) then one-item predicts, back to back; the served
    answers of one item and of a distinct batch."""
    single = {"items": [ITEMS[target]], "targets": [target]}
    batch = {"items": distinct_items(target, 100), "targets": [target]}
    with httpx.Client(base_url=base, timeout=60.0) as client:
        timed(lambda: client.post("/v1/predict", json=single).raise_for_status(), 30, budget_s)  # warm-up
        health = timed(lambda: client.get("/health").raise_for_status(), 300, budget_s)
        one = timed(lambda: client.post("/v1/predict", json=single).raise_for_status(), n_single, budget_s)
        answers = {
            "one": client.post("/v1/predict", json=single).json(),
            "batch": client.post("/v1/predict", json=batch).json(),
        }
    return {"health": health, "predict": one, "answers": answers}


def http_compare(args: argparse.Namespace, uri: str) -> None:
    """The same code served on each ``--http`` spec (e.g. h11 on asyncio vs httptools on uvloop), all servers
    up together, rounds alternating: one client (/health, one-item predicts) then --clients concurrent
    clients; the served answers are compared with the in-process predictor, exactly."""
    from contextlib import ExitStack

    specs = [spec.strip() for spec in args.http.split(",") if spec.strip()]
    target = "ionic_conductivity"  # rank-dopants on NASICON needs the conductivity champion
    single: dict[str, dict[str, list[float]]] = {spec: {"health": [], "predict": []} for spec in specs}
    loads: dict[str, list[dict[str, Any]]] = {spec: [] for spec in specs}
    answers: dict[str, dict[str, Any]] = {}
    with ExitStack() as stack:
        bases = {
            spec: stack.enter_context(
                server(uri, target, args.batch_size, args.workers, http_env(spec), args.startup_timeout)
            )[0]
            for spec in specs
        }
        for base in bases.values():  # warm-up: lazy imports and caches in every worker
            load_phase(base, target, args.clients, 3.0, args.rank_every)
        for r in range(args.repeats):
            for spec, base in bases.items():
                quiet = one_client(base, target, max(1, args.n_single // args.repeats), args.time_budget)
                load_1 = os.getloadavg()[0]
                res = load_phase(base, target, args.clients, args.duration, args.rank_every)
                for kind in ("health", "predict"):
                    single[spec][kind] += quiet[kind]
                loads[spec].append(res)
                answers[spec] = quiet["answers"]
                print(
                    f"round {r + 1} {spec:>18}: one client /health p50/p99 "
                    f"{percentile(quiet['health'], 50):.2f}/{percentile(quiet['health'], 99):.2f} ms, "
                    f"predict {percentile(quiet['predict'], 50):.2f}/"
                    f"{percentile(quiet['predict'], 99):.2f} ms "
                    f"(load {load_1:.2f}); {args.clients} clients {res['predict_s']:.1f} predicts/s, predict "
                    f"p50/p99 {res['predict_p50']:.1f}/{res['predict_p99']:.1f} ms, /health p99 "
                    f"{res['health_p99']:.1f} ms, errors {res['errors']} (load {os.getloadavg()[0]:.2f})",
                    flush=True,
                )
    http_report(args, uri, target, specs, single, loads, answers)


def http_report(
    args: argparse.Namespace,
    uri: str,
    target: str,
    specs: list[str],
    single: dict[str, dict[str, list[float]]],
    loads: dict[str, list[dict[str, Any]]],
    answers: dict[str, dict[str, Any]],
) -> None:
    """The medians table of `http_compare` (first spec = reference) and the exactness check."""
    import gc

    import pandas as pd

    from models.predictor import load_predictors
    from models.targets import TargetName
    from service.api.compute import SingleThreadedCompute

    predictor = load_predictors([TargetName(target)], uri)[TargetName(target)]
    gc.collect()
    gc.freeze()  # as the server does after loading
    frames = {"one": pd.DataFrame([ITEMS[target]]), "batch": pd.DataFrame(distinct_items(target, 100))}
    with SingleThreadedCompute()():
        timed(lambda: predictor.predict_frame(frames["one"]), 30, args.time_budget)
        direct = timed(lambda: predictor.predict_frame(frames["one"]), 300, args.time_budget)
        want = {name: predictor.predict_frame(frame) for name, frame in frames.items()}
    mix = f"1 in {args.rank_every} rank-dopants" if args.rank_every > 0 else "one-item predicts only"
    print(
        f"\n--workers {args.workers}; one client: all rounds pooled; {args.clients} concurrent clients "
        f"({mix}) "
        f"+ /health every 20 ms, {args.duration:.0f} s x {args.repeats} rounds, medians; in-process "
        f"predictor 1 row p50 {percentile(direct, 50):.2f} ms; load now {os.getloadavg()}"
    )
    pooled = [
        (f"{what} p{q} ms (1 client)", [percentile(single[spec][kind], q) for spec in specs], False)
        for what, kind in (("/health", "health"), ("predict", "predict"))
        for q in (50, 99)
    ]
    under_load = [
        (label, [statistics.median(r[key] for r in loads[spec]) for spec in specs], up)
        for label, key, up in (
            (f"predicts/s ({args.clients} clients)", "predict_s", True),
            ("predict p50 ms", "predict_p50", False),
            ("predict p99 ms", "predict_p99", False),
            ("rank p99 ms", "rank_p99", False),
            ("/health p99 ms", "health_p99", False),
            ("errors", "errors", False),
        )
        if key != "rank_p99" or args.rank_every > 0
    ]
    ratio_table(specs, pooled + under_load, digits=2)
    print(f"(ratio: {specs[-1]} over {specs[0]}, > 1 better)")
    for spec in specs:
        bad = sum(served_mismatches(answers[spec][name], want[name], target) for name in frames)
        print(
            f"{spec}: served outputs == in-process predictor (exact): {'yes' if not bad else f'NO ({bad})'}"
        )


# ------------------------------------------------------------------------------------------- rank mode
@contextmanager
def exported_tree(ref: str) -> Iterator[Path]:
    """The project's files at git ``ref`` in a temporary folder (``git archive``: no worktree, no checkout),
    to run the previous code path next to this one in the same run."""
    with tempfile.TemporaryDirectory(prefix="nascreen-ref-") as tmp:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", ref], cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout.strip()
        tree = Path(tmp) / sha
        tree.mkdir()
        archive = subprocess.run(["git", "archive", ref], cwd=ROOT, check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
        yield tree


# Runs in a subprocess with the tree's code first on sys.path: the API's rank handler (what
# POST /v1/rank-dopants computes, without HTTP) on each body, under the server's per-request limits.
IN_PROCESS_RANK = r"""
import gc, json, sys, time
import screening
from models.predictor import load_predictors
from models.targets import TargetName
from service.api.compute import SingleThreadedCompute
from service.api.routes.rank import _rank
from service.api.schemas.rank import RankRequest
from service.api.settings import ApiSettings
uri, bodies, n = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
predictors = load_predictors(list(TargetName), uri)
settings = ApiSettings(tracking_uri=uri)
gc.collect(); gc.freeze()
out = {"code": screening.__file__}
with SingleThreadedCompute()():
    for name, body in bodies.items():
        req = RankRequest.model_validate(body)
        for _ in range(5):
            _rank(req, predictors, settings)
        ms = []
        for _ in range(n):
            t0 = time.perf_counter()
            _rank(req, predictors, settings)
            ms.append((time.perf_counter() - t0) * 1000.0)
        out[name] = {"ms": ms, "response": _rank(req, predictors, settings).model_dump(mode="json")}
print(json.dumps(out))
"""


def in_process_rank(tree: Path, uri: str, n: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, "-c", IN_PROCESS_RANK, uri, json.dumps(RANK_BODIES), str(n)]
    done = subprocess.run(cmd, cwd=tree, env=env, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if not str(result["code"]).startswith(str(tree)):
        raise RuntimeError(f"the run in {tree} imported {result['code']}")
    return result


def differences(a: Any, b: Any, rel: float = 1e-9, where: str = "") -> list[str]:
    """Where two JSON answers differ (numbers to ``rel`` relative tolerance, everything else exactly)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a) != list(b):
            return [f"{where}: keys {sorted(set(a) ^ set(b))}"]
        return [d for k in a for d in differences(a[k], b[k], rel, f"{where}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} vs {len(b)} items"]
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in differences(x, y, rel, f"{where}[{i}]")
        ]
    numbers = (int, float)
    if (
        isinstance(a, numbers)
        and isinstance(b, numbers)
        and not isinstance(a, bool)
        and not isinstance(b, bool)
    ):
        ok = a == b or abs(a - b) <= rel * max(abs(a), abs(b))
        return [] if ok else [f"{where}: {a!r} vs {b!r}"]
    return [] if a == b else [f"{where}: {a!r} vs {b!r}"]


def served_rank(base: str, n: int) -> dict[str, Any]:
    """``n`` rank-dopants requests per body, one after the other on one keep-alive connection."""
    out: dict[str, Any] = {}
    with httpx.Client(base_url=base, timeout=60.0) as client:
        for name, body in RANK_BODIES.items():
            for _ in range(5):
                client.post("/v1/rank-dopants", json=body).raise_for_status()
            ms = timed(
                lambda body=body: client.post("/v1/rank-dopants", json=body).raise_for_status(), n, 120
            )
            out[name] = {"ms": ms, "response": client.post("/v1/rank-dopants", json=body).json()}
    return out


def rank_latency(args: argparse.Namespace, uri: str) -> None:
    """One rank-dopants request end to end, previous code (``--reference-ref``) vs this checkout, in
    process and served, alternating rounds; the answers of both are compared."""
    targets = ",".join(t for t in ITEMS)
    with exported_tree(args.reference_ref) as ref_tree:
        trees = {f"previous ({ref_tree.name})": ref_tree, "current": ROOT}
        rounds: dict[str, dict[str, list[float]]] = {}
        answers: dict[str, dict[str, Any]] = {}
        with (
            server(uri, targets, 1000, 1, {}, args.startup_timeout, ref_tree) as (ref_base, _),
            server(uri, targets, 1000, 1, {}, args.startup_timeout) as (new_base, _),
        ):
            bases = dict(zip(trees, (ref_base, new_base), strict=True))
            for r in range(args.repeats):
                for label, tree in trees.items():
                    for where, result in (
                        ("in process", in_process_rank(tree, uri, args.n_rank)),
                        ("served", served_rank(bases[label], args.n_rank)),
                    ):
                        for name in RANK_BODIES:
                            ms = result[name]["ms"]
                            rounds.setdefault(f"{where}|{name}|{label}", []).append(percentile(ms, 50))
                            answers[f"{where}|{name}|{label}"] = result[name]["response"]
                        print(f"round {r + 1} {label:>18} {where}: load {os.getloadavg()[0]:.2f}", flush=True)
    prev, cur = trees
    print(f"\nrank-dopants, one request at a time, p50 per round (median of {args.repeats} rounds):")
    for where in ("in process", "served"):
        for name in RANK_BODIES:
            a = statistics.median(rounds[f"{where}|{name}|{prev}"])
            b = statistics.median(rounds[f"{where}|{name}|{cur}"])
            diff = differences(answers[f"{where}|{name}|{prev}"], answers[f"{where}|{name}|{cur}"])
            same = "equal" if not diff else f"DIFFER ({len(diff)}: {diff[:3]})"
            exact = differences(answers[f"{where}|{name}|{prev}"], answers[f"{where}|{name}|{cur}"], 0.0)
            same += " (bit for bit)" if not exact else f" ({len(exact)} numbers not bit for bit)"
            print(
                f"{where:>10} {name:<24} previous {a:7.2f} ms  current {b:7.2f} ms  {a / b:5.2f}x  "
                f"answers {same}"
            )


def main() -> int:
    from service.cli.serve import default_workers

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=["latency", "concurrent", "both", "rank", "http"], default="both")
    parser.add_argument(
        "--http",
        default=HTTP_SPECS,
        help="http mode: comma-separated servers to compare, protocol[/loop] (nascreen serve --http/--loop); "
        "the first is the reference",
    )
    parser.add_argument("--tracking-uri", default=None, help="default: the project store under mlruns/")
    parser.add_argument("--target", default="ionic_conductivity", choices=sorted(ITEMS))
    parser.add_argument(
        "--workers", type=int, default=default_workers(), help="server workers (default: CPUs)"
    )
    parser.add_argument("--n-single", type=int, default=1000)
    parser.add_argument("--n-batches", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--time-budget", type=float, default=60.0, help="seconds per latency phase (cap)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per concurrent load phase")
    parser.add_argument("--repeats", type=int, default=2, help="alternating reference/current rounds")
    parser.add_argument(
        "--rank-every",
        type=int,
        default=RANK_EVERY,
        help="concurrent mode: one rank-dopants request per N requests of each client (0: predicts only)",
    )
    parser.add_argument("--startup-timeout", type=float, default=240.0)
    parser.add_argument(
        "--reference-ref",
        default=None,
        help="git ref of the previous code (rank mode: default the merge base with main; concurrent mode: "
        "when given, the reference server runs that code with the same workers instead of the "
        "previous serving mode; latency mode: when given, that code and this one served side by side, "
        "alternating)",
    )
    parser.add_argument("--n-rank", type=int, default=100, help="rank mode: requests per body and round")
    args = parser.parse_args()

    from models.tracking import default_tracking_uri

    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(ROOT)
    print(f"models from {uri}; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}")
    if args.mode in ("latency", "both"):
        if args.reference_ref is not None and args.mode == "latency":
            latency_against(args, uri)
        else:
            latency(args, uri)
    if args.mode in ("concurrent", "both"):
        concurrent(args, uri)
    if args.mode == "http":
        http_compare(args, uri)
    if args.mode == "rank":
        if args.reference_ref is None:
            args.reference_ref = subprocess.run(
                ["git", "merge-base", "HEAD", "main"], cwd=ROOT, check=True, capture_output=True, text=True
            ).stdout.strip()
        rank_latency(args, uri)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
