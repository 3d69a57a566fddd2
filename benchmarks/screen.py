"""Screening throughput: generate + featurise + predict (every target of the spec, with uncertainty and
domain) + merge + rank, single process vs local Ray, for N candidates (default 100,000 and 1,000,000).

    .venv/bin/python benchmarks/screen.py --n 100000 1000000 [--repeats 3] [--spec SPEC] [--tracking-uri URI]
        [--executors local-1t local ray ray-worker-load]

Prints candidates/s per executor, the Ray speed-ups against the single-threaded and the default local run
(measured in the same run; with --repeats the executors are interleaved round by round and medians are
compared, so load from other work on the machine hits all of them alike) and peak memory: the driver's
RSS and the summed RSS of the driver and every process under it (the Ray workers), sampled every 0.2 s.
The first N candidates of the spec's space are screened; the fraction grid of the spec is refined until the
space holds at least N candidates. Needs champion models in the MLflow store (`nascreen train`).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, this folder comes first on sys.path and benchmarks/featurize.py would shadow the
# featurize package: put the project root first instead.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
DEFAULT_SPEC = ROOT / "examples" / "specs" / "p2_na0.6li0.2mn0.8o2_dopants.yaml"


class PeakMemory:
    """Samples the RSS of this process and of all its descendants (Ray's raylet and workers)."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.driver = 0
        self.total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _rss_tree(root: int) -> tuple[int, int]:
        """(RSS of ``root``, summed RSS of ``root`` and its descendants) from /proc (Linux)."""
        parent: dict[int, int] = {}
        rss: dict[int, int] = {}
        page = os.sysconf("SC_PAGE_SIZE")
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{entry}/statm") as fh:
                    rss[int(entry)] = int(fh.read().split()[1]) * page
            except (OSError, IndexError, ValueError):
                continue
            parent[int(entry)] = int(fields[1])
        tree, frontier = {root}, [root]
        while frontier:
            pid = frontier.pop()
            kids = [c for c, pp in parent.items() if pp == pid and c not in tree]
            tree.update(kids)
            frontier.extend(kids)
        return rss.get(root, 0), sum(rss.get(p, 0) for p in tree)

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.is_set():
            driver, total = self._rss_tree(me)
            self.driver = max(self.driver, driver)
            self.total = max(self.total, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def spec_with_at_least(path: Path, n: int):
    """The spec at ``path`` with its fraction grid refined until it has >= n candidates."""
    from screening.candidates import count_candidates
    from screening.spec_io import load_spec, read_spec_mapping

    base = read_spec_mapping(path)
    grid = base.get("fractions") or {}
    start, stop = float(grid.get("start", 0.05)), float(grid.get("stop", 0.2))
    # decimal steps (5, 2, 1) x 10^-k: every grid value has <= 8 decimals, as the spec requires
    for step in (m * 10.0**-k for k in range(3, 9) for m in (5, 2, 1)):
        spec = load_spec(
            path,
            overrides={"fractions": {"start": start, "stop": stop, "step": step}, "decimals": 8},
        )
        if count_candidates(spec) >= n:
            return spec
    raise ValueError(f"{path}: even a 1e-8 fraction step gives fewer than {n} candidates")


EXECUTORS = {
    "local-1t": "single process, one thread (BLAS/OpenMP/torch/joblib limited to 1)",
    "local": "single process, default threads (the default local run)",
    "ray": "local Ray, models loaded once in the driver and shared with the actors",
    "ray-worker-load": "local Ray, every actor loading the models itself (the previous design)",
}


@contextmanager
def single_threaded() -> Iterator[None]:
    from joblib import parallel_config
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")
    saved = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1), parallel_config(backend="sequential"):
            yield
    finally:
        if torch is not None and saved is not None:
            torch.set_num_threads(saved)


def run_once(spec, n: int, executor_name: str, tracking_uri: str, chunk_size: int) -> dict:
    from models.tracking import champion_version
    from screening.chunks import plan_chunks
    from screening.ranking import rank
    from screening.runner import LocalExecutor, SpecScorerFactory, result_columns, run_chunks
    from screening.store import ChunkStore, Manifest

    versions = {t.value: str(champion_version(t, tracking_uri)) for t in spec.targets}
    factory = SpecScorerFactory(spec=spec, tracking_uri=tracking_uri, model_versions=versions)
    limit = single_threaded() if executor_name == "local-1t" else nullcontext()
    with tempfile.TemporaryDirectory() as tmp, PeakMemory() as memory, limit:
        store = ChunkStore(Path(tmp))
        store.open(Manifest("bench", versions, chunk_size, n), resume=False)
        start, cpu_start = time.perf_counter(), time.process_time()
        if executor_name.startswith("local"):
            report = run_chunks(plan_chunks(n, chunk_size), factory, LocalExecutor(), store)
            init_s = 0.0
        else:
            from screening.ray_runner import RayExecutor, ray_session

            t0 = time.perf_counter()
            with ray_session():
                init_s = time.perf_counter() - t0
                executor = RayExecutor(share_scorer=executor_name == "ray")
                report = run_chunks(plan_chunks(n, chunk_size), factory, executor, store)
        chunks_done = time.perf_counter()
        ranked = rank(store.read("scored", columns=result_columns(spec)), spec.ranking)
        seconds = time.perf_counter() - start
        cpu_seconds = time.process_time() - cpu_start
    assert not report.failed, report.failed
    return {
        "seconds": seconds,
        "cpu_s": cpu_seconds,
        "ray_init_s": init_s,
        "chunks_s": report.seconds,
        "merge_s": seconds - (chunks_done - start),
        "rows": len(ranked),
        "driver_mb": memory.driver / 2**20,
        "total_mb": memory.total / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--spec", type=Path, default=DEFAULT_SPEC)
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--chunk-size", type=int, default=25_000)
    parser.add_argument(
        "--executors", nargs="+", default=["local-1t", "local", "ray"], choices=list(EXECUTORS)
    )
    parser.add_argument(
        "--repeats", type=int, default=1, help="rounds; executors interleaved per round, medians reported"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from models.tracking import default_tracking_uri

    uri = args.tracking_uri or default_tracking_uri(ROOT)
    print(
        f"spec {args.spec.name}; models from {uri}; chunk size {args.chunk_size}; {os.cpu_count()} CPUs; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    for name in args.executors:
        print(f"  {name}: {EXECUTORS[name]}")
    for n in args.n:
        spec = spec_with_at_least(args.spec, n)
        runs: dict[str, list[dict]] = {name: [] for name in args.executors}
        for r in range(args.repeats):
            for name in args.executors:  # interleaved: every executor sees the same machine load
                res = run_once(spec, n, name, uri, args.chunk_size)
                runs[name].append(res)
                print(f"N={n:>9,} round {r + 1} {name:>15}: {res['seconds']:8.1f} s", flush=True)
        results = {name: {k: statistics.median(x[k] for x in rs) for k in rs[0]} for name, rs in runs.items()}
        for name, r in results.items():
            print(
                f"N={n:>9,} {name:>15}: {r['seconds']:8.1f} s  {n / r['seconds']:9,.0f} candidates/s  "
                f"(driver CPU {r['cpu_s']:.1f} s)  (ray init {r['ray_init_s']:.1f} s, chunks "
                f"{r['chunks_s']:.1f} s, merge+rank {r['merge_s']:.1f} s)  ranked rows {r['rows']:,.0f}  "
                f"peak RSS driver {r['driver_mb']:,.0f} MB, driver+workers {r['total_mb']:,.0f} MB"
            )
        for ray_name in ("ray", "ray-worker-load"):
            if ray_name not in results:
                continue
            for ref in ("local-1t", "local", "ray-worker-load"):
                if ref in results and ref != ray_name:
                    speedup = results[ref]["seconds"] / results[ray_name]["seconds"]
                    print(f"N={n:>9,} {ray_name} speed-up vs {ref}: {speedup:.2f}x (medians, same run)")


if __name__ == "__main__":
    main()
