"""The in-process predictor on one row and on small and large batches, this tree against a reference tree
(default: a ``git archive`` of ``main``) in the same run: one worker process per tree, each loading the
champions once (under the server's per-request thread limits, heap frozen as the server does), the two
asked in turn, round after round, so load from other users hits both alike. What is timed is what
``POST /v1/predict`` computes for its items, ``Predictor.predict_columns`` (also ``predict_frame``, one row),
on the items of ``benchmarks/api.py`` (one item; batches of distinct items, so no repeat is answered once).
The outputs of the two trees are compared exactly (every column, floats by their bits) on a corpus of
good and bad rows.

    PYTHONPATH=. .venv/bin/python -P benchmarks/predict_one.py [--ref main] [--tracking-uri URI]
        [--target ionic_conductivity] [--rounds 10] [--n-one 40]

``--tracking-uri`` defaults to the project's store; a copy keeps it read-only:
``cp mlruns/mlflow.db /tmp/x.db`` and ``--tracking-uri sqlite:////tmp/x.db``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]

#: Rows whose outputs the two trees must agree on (besides the timed items): bad element, negative amount,
#: unknown phase, bad conditions, missing and non-text formulas, repeats
CORPUS_EXTRA = {
    "ionic_conductivity": [
        {"formula": "Na2XyO3"}, {"formula": "Na-1ZrO3"}, {"formula": "Na3PS4", "phase": "plasma"},
        {"formula": "Na3PS4", "phase": "glass"}, {"formula": "Li7La3Zr2O12", "phase": "crystalline"},
        {"formula": ""}, {"formula": None}, {"formula": "Na3Zr2Si2PO12"},
    ],
    "capacity_retention": [
        {"formula": "NaMnO2"}, {"formula": "NaMnO2", "cycles": -5}, {"formula": "NaMnO2", "cycles": "many"},
        {"formula": "NaMnQ2", "cycles": 10}, {"formula": "NaNi0.5Mn0.5O2", "cycles": "200"},
    ],
    "average_voltage": [
        {"formula": "MnO2"}, {"formula": "NaMnO2", "working_ion": "Xe"}, {"formula": "LiCoO2",
        "working_ion": "Li"}, {"formula": "Na2Zz"},
    ],
}  # fmt: skip

# Runs in a subprocess with one tree's code first on sys.path; answers JSON commands on stdin, one a line.
WORKER = r"""
import gc, json, sys, time
import models
import pandas as pd
from models.predictor import load_predictors
from models.targets import TargetName
from service.api.compute import SingleThreadedCompute
uri, target, cases, corpus = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
predictor = load_predictors([TargetName(target)], uri)[TargetName(target)]
frames = {name: pd.DataFrame(items) for name, items in cases.items()}
calls = {
    name: (lambda f=f: predictor.predict_columns(f)) for name, f in frames.items()
}
calls["one_frame"] = lambda f=frames["one"]: predictor.predict_frame(f)
def cell(v):
    if isinstance(v, float):
        return ["f", v.hex()]
    return [type(v).__name__, repr(v)]
gc.collect(); gc.freeze()
limits = SingleThreadedCompute()
print(json.dumps({"code": models.__file__}), flush=True)
for line in sys.stdin:
    cmd = json.loads(line)
    with limits():
        if cmd["op"] == "time":
            fn, ms = calls[cmd["case"]], []
            for _ in range(cmd["n"]):
                t0 = time.perf_counter()
                fn()
                ms.append((time.perf_counter() - t0) * 1000.0)
            out = {"ms": ms}
        else:
            frame = pd.DataFrame(corpus)
            answer = predictor.predict_frame(frame, raw=True)
            out = {c: [str(answer[c].dtype), [cell(v) for v in answer[c].tolist()]] for c in answer.columns}
            columns = predictor.predict_columns(frame.iloc[[0]].reset_index(drop=True))
            out["columns"] = {c: [type(v).__name__, [cell(x) for x in list(v)]] for c, v in columns.items()}
    print(json.dumps(out), flush=True)
"""


def _api() -> Any:
    """``benchmarks/api.py`` loaded by path: its items are the one definition of what is timed."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_bench_api", Path(__file__).with_name("api.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    saved = list(sys.path)
    spec.loader.exec_module(module)
    sys.path[:] = saved  # api.py puts this tree first on sys.path; the workers choose their own
    return module


class Worker:
    def __init__(self, tree: Path, uri: str, target: str, cases: dict[str, Any], corpus: list[Any]) -> None:
        env = {**os.environ, "PYTHONPATH": str(tree)}
        cmd = [sys.executable, "-P", "-c", WORKER, uri, target, json.dumps(cases), json.dumps(corpus)]
        self.proc = subprocess.Popen(
            cmd, cwd=tree, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        code = self.ask(None)["code"]
        if not str(code).startswith(str(tree)):
            raise RuntimeError(f"the worker for {tree} imported {code}")

    def ask(self, cmd: dict[str, Any] | None) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if cmd is not None:
            self.proc.stdin.write(json.dumps(cmd) + "\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker exited ({self.proc.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


def load() -> str:
    with open("/proc/loadavg") as f:
        return "load " + " ".join(f.read().split()[:3])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ref", default="main", help="git ref of the reference tree (git archive)")
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--target", default="ionic_conductivity")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--n-one", type=int, default=40, help="one-row calls per tree per round")
    args = parser.parse_args()
    api = _api()
    uri = args.tracking_uri or f"sqlite:///{(ROOT / 'mlruns' / 'mlflow.db').as_posix()}"
    item = api.ITEMS[args.target]
    cases = {
        "one": [item],
        "ten": api.distinct_items(args.target, 10),
        "thousand": api.distinct_items(args.target, 1000),
    }
    corpus = [item, *api.distinct_items(args.target, 5), *CORPUS_EXTRA[args.target]]
    # calls per round: (case, calls); about the same time per case
    plan = [("one", args.n_one), ("one_frame", args.n_one), ("ten", max(4, args.n_one // 4)), ("thousand", 2)]
    with api.exported_tree(args.ref) as ref_tree:
        workers = {
            f"reference ({args.ref})": Worker(ref_tree, uri, args.target, cases, corpus),
            "this tree": Worker(ROOT, uri, args.target, cases, corpus),
        }
        try:
            for w in workers.values():  # warm-up: lazy imports, caches
                for case, n in plan:
                    w.ask({"op": "time", "case": case, "n": max(2, n // 2)})
            ms: dict[str, dict[str, list[float]]] = {name: {c: [] for c, _ in plan} for name in workers}
            loads = [load()]
            for _ in range(args.rounds):
                for case, n in plan:
                    for name, w in workers.items():
                        ms[name][case] += w.ask({"op": "time", "case": case, "n": n})["ms"]
                loads.append(load())
            outputs = {name: w.ask({"op": "outputs"}) for name, w in workers.items()}
        finally:
            for w in workers.values():
                w.close()
    report(args, ms, loads, outputs)
    return 0


def report(
    args: argparse.Namespace, ms: dict[str, dict[str, list[float]]], loads: list[str], outputs: dict
) -> None:
    ref, new = list(ms)
    print(
        f"target {args.target}; {args.rounds} rounds, the two trees interleaved; {loads[0]} at the start, "
        f"{loads[len(loads) // 2]} midway, {loads[-1]} at the end"
    )
    print(f"{'':34}{ref:>22}{new:>22}{'ratio':>8}")
    for case, label in (("one", "predict_columns, 1 row"), ("one_frame", "predict_frame, 1 row")):
        for q in (50, 99):
            a, b = percentile(ms[ref][case], q), percentile(ms[new][case], q)
            print(f"{label + f' p{q} (ms)':34}{a:>22.3f}{b:>22.3f}{a / b:>7.2f}x")
    for case, rows in (("ten", 10), ("thousand", 1000)):
        a, b = (rows / (percentile(ms[n][case], 50) / 1000.0) for n in (ref, new))
        print(f"{f'{rows} distinct rows, rows/s (p50)':34}{a:>22,.0f}{b:>22,.0f}{b / a:>7.2f}x")
    same = outputs[ref] == outputs[new]
    print(
        f"outputs on {len(next(iter(outputs[ref].values()))[1])} corpus rows (every column, floats by bits, "
        f"dtypes, errors) equal: {'yes' if same else 'NO'}"
    )
    if not same:
        for col in outputs[ref]:
            if outputs[ref][col] != outputs[new].get(col):
                print(f"  differs: {col}")


if __name__ == "__main__":
    raise SystemExit(main())
