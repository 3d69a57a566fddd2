"""Where one rank-dopants request spends its time, in process: the steps of the API's rank handler
(``service.api.routes.rank._rank``) timed one by one on the NASICON body of ``benchmarks/api.py``, under the
server's per-request thread limits. Medians of ``--n`` requests after a warm-up.

    PYTHONPATH=. .venv/bin/python -P benchmarks/rank_split.py [--tracking-uri URI] [--n 60]

Run it with another tree first on PYTHONPATH (e.g. a ``git archive`` of the previous commit) for the same
split of the previous code: it only calls functions both have.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]


def _api_bodies() -> Any:
    """``benchmarks/api.py`` loaded by path (its request bodies are the one definition of what is timed);
    this directory is kept off ``sys.path`` so another tree's code can come first."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_bench_api", Path(__file__).with_name("api.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--n", type=int, default=60)
    args = parser.parse_args()

    import screening
    from models.predictor import load_predictors
    from models.tracking import default_tracking_uri
    from screening.candidates import candidate_chunk
    from screening.ranking import describe, rank
    from screening.runner import anchor_offsets
    from screening.scoring import score_candidates
    from service.api.compute import SingleThreadedCompute
    from service.api.routes import rank as route
    from service.api.schemas.rank import RankRequest, RankResponse
    from service.api.screen_job import parse_and_count, records
    from service.api.settings import ApiSettings

    body = _api_bodies().RANK_BODY
    uri = args.tracking_uri or default_tracking_uri(ROOT)
    predictors = load_predictors(["ionic_conductivity"], uri)
    settings = ApiSettings(tracking_uri=uri)
    times: dict[str, list[float]] = {}

    def step(name: str, t0: float) -> float:
        t = time.perf_counter()
        times.setdefault(name, []).append((t - t0) * 1000.0)
        return t

    def once() -> None:
        t = time.perf_counter()
        req = RankRequest.model_validate(body)
        parsed: Any = parse_and_count(
            req.to_spec(), settings, max_candidates=2000, too_many_hint="", predictors=predictors
        )
        spec, n = parsed[0], parsed[1]
        t = step("request + spec parse, limits", t)
        chosen = {target: predictors[target] for target in spec.targets}
        anchors = anchor_offsets(spec, chosen)
        chunk = candidate_chunk(spec, 0, n)
        t = step("candidates (dopant x site x fraction, charge balance)", t)
        scored = score_candidates(chunk.accepted, chosen, reference=spec.reference or None, anchors=anchors)
        t = step("scoring (featurise + models + relative + columns)", t)
        ranked = rank(scored, spec.ranking)
        t = step("ranking", t)
        rows = records(route.with_host(ranked, req.top_k).drop(columns=route._REPEATED, errors="ignore"))
        RankResponse(
            ranking=describe(spec.ranking), targets=list(spec.targets), n_generated=n, n_rejected=0,
            n_scored=len(ranked), phase=spec.phase, candidates=rows, rejected=[], reference=spec.reference,
        ).model_dump_json()  # fmt: skip
        t = step("response (rows, schema, JSON)", t)

    def predict_only() -> None:
        spec = parse_and_count(
            RankRequest.model_validate(body).to_spec(), settings, max_candidates=2000, too_many_hint="",
            predictors=predictors,
        )[0]  # fmt: skip
        frame = candidate_chunk(spec, 0, 13).accepted
        t = time.perf_counter()
        predictors["ionic_conductivity"].predict_frame(frame[["formula", "phase"]])
        step("  of which Predictor.predict_frame on the 13 candidates", t)

    gc.collect()
    gc.freeze()
    with SingleThreadedCompute()():
        for _ in range(10):
            once()
            predict_only()
        times.clear()
        for _ in range(args.n):
            once()
            predict_only()
    total = sum(statistics.median(v) for k, v in times.items() if not k.startswith(" "))
    print(f"code: {Path(screening.__file__).parents[1]}; load average {__import__('os').getloadavg()[0]:.2f}")
    for name, values in times.items():
        print(f"{name:<58} median {statistics.median(values):7.2f} ms")
    print(f"{'sum of the steps':<58} {total:14.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
