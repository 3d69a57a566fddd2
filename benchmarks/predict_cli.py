"""`nascreen predict` end to end (a real subprocess, as a user runs it), same run as its references.

    python benchmarks/predict_cli.py [--n 50000] [--target capacity_retention] [--tracking-uri URI]

Input: N seeded doped layered-oxide formulas (benchmarks/featurize_cli.py) with ``cycles`` (and, for
capacity retention, ``current_mA_g``) columns, as text in a CSV.

Model: the target's ``champion`` in --tracking-uri (default: the project store under mlruns/). When there
is none, a quick model (``TrainingConfig(quick=True)``) is trained on the shipped data into a temporary
store and the output says so: its inference speed is not the production champion's.

What is timed, wall clock:
* CLI: ``nascreen predict in.csv -t T -o out.csv|out.parquet`` minus the same command on a 1-row file
  (start-up cancelled: interpreter, imports, model loading);
* the predictor in-process: ``Predictor.predict_frame`` on the same rows (the model floor: what the CLI
  adds on top of it is file IO and batching);
* the previous CLI's IO around the same predictor: ``pandas.read_csv(dtype=str)`` + ``predict_frame`` +
  ``DataFrame.to_csv`` (the reference the new table IO replaces).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _bench() -> object:
    spec = importlib.util.spec_from_file_location(
        "featurize_cli", Path(__file__).with_name("featurize_cli.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def champion_uri(uri: str, target: str, tmp: Path) -> tuple[str, str]:
    """A store with a champion for ``target`` and a note on where it came from."""
    from models import tracking
    from models.targets import TargetName
    from models.training import TrainingConfig, train_target

    try:
        tracking.load_champion(TargetName(target), uri)
        return uri, f"champion in {uri}"
    except tracking.NoChampionError:
        pass
    store = tracking.default_tracking_uri(tmp)
    result = train_target(
        TargetName(target), ROOT / "data", TrainingConfig(quick=True, n_splits=3, studies=False)
    )
    logged = tracking.log_training_run(
        tracking_uri=store,
        target=TargetName(target),
        model=result.model,
        input_example=result.input_example,
        params=result.params(),
        metrics=result.flat_metrics(),
        figures=result.figures,
        model_card=result.model_card,
    )
    tracking.register_champion(tracking_uri=store, target=TargetName(target), logged=logged)
    return store, f"no champion in {uri}: a QUICK {result.candidate.name} trained into a temporary store"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--target", default="capacity_retention")
    parser.add_argument("--tracking-uri", default=None, help="default: the project store under mlruns/")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    bench = _bench()
    load = os.getloadavg()[0]
    print(f"load average {load:.1f} on {os.cpu_count()} cores{' (UNDER LOAD)' if load > 1.5 else ''}")

    import pandas as pd

    from models.predictor import load_predictors
    from models.tracking import default_tracking_uri

    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        uri, note = champion_uri(args.tracking_uri or default_tracking_uri(ROOT), args.target, tmp)
        print(f"model: {note}")
        formulas = bench.doped_oxides(args.n, args.seed)  # type: ignore[attr-defined]
        rng = np.random.default_rng(args.seed)
        frame = pd.DataFrame(
            {
                "formula": formulas,
                "cycles": rng.choice(["50", "100", "200", "500"], size=args.n),
                "current_mA_g": rng.choice(["10", "20", "100", ""], size=args.n),
            }
        )
        src, one = tmp / "in.csv", tmp / "one.csv"
        frame.to_csv(src, index=False)
        frame.head(1).to_csv(one, index=False)

        predictor = next(iter(load_predictors([args.target], uri).values()))
        predictor.predict_frame(frame.head(10))
        start = time.perf_counter()
        predictor.predict_frame(frame)
        floor = args.n / (time.perf_counter() - start)
        start = time.perf_counter()
        old = pd.read_csv(src, dtype=str, keep_default_na=False, na_filter=False)
        pd.concat([old, predictor.predict_frame(old)], axis=1).to_csv(tmp / "old.csv", index=False)
        previous = args.n / (time.perf_counter() - start)
        print(f"{args.n:,} rows, target {args.target}")
        print(f"  Predictor.predict_frame in-process (model floor): {floor:>10,.0f} rows/s")
        print(f"  previous CLI IO (pandas read_csv + to_csv):       {previous:>10,.0f} rows/s")
        for fmt in ("csv", "parquet"):
            out = tmp / f"out.{fmt}"
            cmd = ["predict", "-t", args.target, "--tracking-uri", uri, "-o", str(out)]
            startup, _, _ = bench.run_cli([*cmd, str(one)])  # type: ignore[attr-defined]
            wall, _, _ = bench.run_cli([*cmd, str(src)])  # type: ignore[attr-defined]
            rate = args.n / max(wall - startup, 1e-9)
            print(
                f"  nascreen predict -> {fmt:7} end to end: {rate:>10,.0f} rows/s (wall {wall:.1f} s, "
                f"start-up {startup:.1f} s cancelled): {rate / floor:.2f}x the model floor, "
                f"{rate / previous:.2f}x the previous CLI IO"
            )


if __name__ == "__main__":
    main()
