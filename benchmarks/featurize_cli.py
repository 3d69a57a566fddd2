"""`nascreen featurize` end to end (a real subprocess, as a user runs it) vs matminer, same run.

    python benchmarks/featurize_cli.py [--n 200000] [--n-reference 2000] [--jobs 1 2] [--seed 0]
    python benchmarks/featurize_cli.py --rss-rows 5000000      # peak memory on a long file

Input: N seeded doped layered-oxide formulas (``_layered`` of benchmarks/featurize.py: P2/O3 hosts with
up to three transition metals and up to three dopants, a polymorph prefix on 3 in 4), one CSV column.

What is timed, wall clock:
* CLI: ``nascreen featurize in.csv -f magpie -o out.csv|out.parquet [--jobs J]`` as a subprocess, minus
  the same command on a 1-row file (start-up cancelled: interpreter, imports, element tables, worker
  start; the smaller of two 1-row runs; a row whose start-up is >= 90% of its run is skipped as too
  noisy, never reported). The child processes' CPU seconds are printed too.
* matminer: what a matminer user runs per formula: ``pymatgen Composition(formula)`` (polymorph prefix
  removed, pymatgen does not read it) + ``ElementProperty.from_preset("magpie").featurize`` with
  ``set_n_jobs(1)``, on the first --n-reference formulas, scaled to formulas/s. It runs in this process
  between the CLI runs, so it sees the same machine load.
* predict: see benchmarks/predict_cli.py.

With --rss-rows the CLI featurises that many rows (CSV to stdout, discarded) and the peak resident set
of the child is printed (``ru_maxrss``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without install
NASCREEN = [sys.executable, "-c", "from service.cli import main; main()"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _generator() -> object:
    """benchmarks/featurize.py loaded by path (its module name would shadow the featurize package)."""
    spec = importlib.util.spec_from_file_location("bench_featurize", Path(__file__).with_name("featurize.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def doped_oxides(n: int, seed: int) -> list[str]:
    layered = _generator()._layered  # type: ignore[attr-defined]
    rng = np.random.default_rng(seed)
    return [layered(rng) for _ in range(n)]


def write_input(path: Path, formulas: list[str]) -> None:
    path.write_text("formula\n" + "\n".join(formulas) + "\n")


def run_cli(args: list[str], stdout: int | None = None) -> tuple[float, float, int]:
    """Wall seconds, child CPU seconds and peak RSS (KiB) of one `nascreen` subprocess."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        [*NASCREEN, *args], env=ENV, stdout=stdout or subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"nascreen {' '.join(args)} failed:\n{proc.stderr.decode()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, after.ru_maxrss


def matminer_rate(formulas: list[str]) -> tuple[float, float]:
    """Formulas per wall second and per CPU second of pymatgen parsing + matminer Magpie, one at a
    time, one process."""
    from matminer.featurizers.composition import ElementProperty
    from pymatgen.core import Composition

    ep = ElementProperty.from_preset("magpie")
    ep.set_n_jobs(1)
    plain = [re.sub(r"^[OP]\d-", "", f) for f in formulas]
    ep.featurize(Composition(plain[0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start, cpu = time.perf_counter(), time.process_time()
        for f in plain:
            ep.featurize(Composition(f))
        return len(plain) / (time.perf_counter() - start), len(plain) / (time.process_time() - cpu)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--n-reference", type=int, default=2000)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--formats", nargs="+", default=["csv", "parquet"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rss-rows", type=int, default=0, help="only measure peak RSS on this many rows")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"load average {load:.1f} on {os.cpu_count()} cores{' (UNDER LOAD)' if load > 1.5 else ''}")

    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        if args.rss_rows:
            # 50,000 distinct formulas repeated: the parse cache (2**17 entries) keeps the run short on a
            # loaded machine; what is measured is that memory does not grow with the number of rows
            base = doped_oxides(50_000, args.seed)
            src = tmp / "long.csv"
            with open(src, "w") as handle:
                handle.write("formula\n")
                for start in range(0, args.rss_rows, len(base)):
                    handle.write("\n".join(base[: args.rss_rows - start]) + "\n")
            size = src.stat().st_size
            for jobs in args.jobs:
                wall, cpu, rss = run_cli(["featurize", str(src), "-f", "magpie", "-o", "-", "-j", str(jobs)])
                print(
                    f"{args.rss_rows:,} rows ({size / 1e6:.0f} MB CSV) -> CSV on stdout, --jobs {jobs}: "
                    f"{wall:.0f} s wall, peak RSS of the largest process {rss / 1024:.0f} MiB"
                )
            return

        formulas = doped_oxides(args.n, args.seed)
        src, one = tmp / "in.csv", tmp / "one.csv"
        write_input(src, formulas)
        write_input(one, formulas[:1])
        print(f"{args.n:,} doped-oxide formulas ({len(set(formulas)):,} distinct), e.g. {formulas[0]}")
        ref_rates = [matminer_rate(formulas[: args.n_reference])]
        print(
            f"matminer (pymatgen parse + Magpie): {ref_rates[0][0]:,.0f} formulas/s wall, "
            f"{ref_rates[0][1]:,.0f} per CPU second ({args.n_reference} formulas)"
        )
        results = []
        for fmt in args.formats:
            for jobs in args.jobs:
                out = tmp / f"out.{fmt}"
                cmd = ["featurize", "-f", "magpie", "-j", str(jobs)]
                # start-up: the smaller of two 1-row runs (a load spike in one of them would otherwise
                # be subtracted from the real run and inflate its rate)
                starts = [run_cli([*cmd, str(one), "-o", str(out)]) for _ in range(2)]
                startup, startup_cpu = min(s[0] for s in starts), min(s[1] for s in starts)
                wall, cpu, _ = run_cli([*cmd, str(src), "-o", str(out)])
                if wall - startup <= 0.1 * wall:
                    print(f"  {fmt} -j {jobs}: start-up {startup:.2f} s of {wall:.2f} s: too noisy, skipped")
                    continue
                net, net_cpu = wall - startup, max(cpu - startup_cpu, 1e-9)
                ref_rates.append(matminer_rate(formulas[: args.n_reference // 2]))  # same load, again
                results.append((fmt, jobs, wall, startup, net, net_cpu, out.stat().st_size))
        ref = float(np.median([r[0] for r in ref_rates]))
        ref_cpu = float(np.median([r[1] for r in ref_rates]))
        print(
            f"matminer, median of {len(ref_rates)} runs between the CLI runs: {ref:,.0f} formulas/s wall, "
            f"{ref_cpu:,.0f} per CPU second\n"
        )
        print(
            "format   jobs  wall s  start-up s  net s  CLI formulas/s  x matminer (wall)  "
            "net CPU s  x matminer (CPU)  out MB"
        )
        for fmt, jobs, wall, startup, net, net_cpu, size in results:
            rate = args.n / net
            print(
                f"{fmt:8} {jobs:>4} {wall:>7.2f} {startup:>11.2f} {net:>6.2f} {rate:>15,.0f} "
                f"{rate / ref:>17.0f}x {net_cpu:>10.1f} {args.n / net_cpu / ref_cpu:>16.0f}x "
                f"{size / 1e6:>7.0f}"
            )
        goals = {"csv": 100, "parquet": 150}
        print()
        for fmt, goal in goals.items():
            best = max((args.n / r[4] / ref for r in results if r[0] == fmt), default=float("nan"))
            verdict = "met" if best >= goal else "MISSED"
            print(f"  [{verdict}] {fmt} out >= {goal}x matminer, wall (best {best:.0f}x)")


if __name__ == "__main__":
    main()
