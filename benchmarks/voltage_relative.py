"""Does "delta vs host" help for average voltage? Measured under grouped CV by chemical system.

For every pair of rows of one held-out chemical system (same elements, different amounts: what changing
a fraction does; a new dopant element makes a new chemical system, so these pairs are the closest the
voltage data come to "candidate vs host"), compare three ways to answer "how much does b change vs a":

* ``dummy``: no change predicted (delta 0), a constant conformal interval of |dy| from the other folds;
* ``naive``: the difference of the two absolute predictions with the absolute intervals combined as if
  independent (half-width ``z sqrt(std_a^2 + std_b^2)``);
* ``relative``: the same difference with the interval calibrated on held-out pairs
  (``models.relative``: split-conformal on out-of-fold pairs, spread ``|delta| + sqrt(s_a^2 + s_b^2)``),
  scored honestly (each fold's pairs get the calibration of the other folds' pairs).

Prints MAE of the delta, 90% coverage, mean width and Spearman(|error|, std) for each, plus the share
of pairs >= 0.1 V apart whose sign is right. Run::

    PYTHONPATH=$PWD nice -n 10 python -m benchmarks.voltage_relative [--trees 100] [--splits 5]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm
from sklearn.ensemble import RandomForestRegressor

from models.data.loader import load_curated
from models.domain import domain_ions
from models.evaluation import coverage, mae, spearman
from models.relative import _cross_fold_delta, study_pairs
from models.training import Candidate, training_frame
from models.uncertain import UncertainRegressor

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--splits", type=int, default=5)
    args = parser.parse_args()
    start = time.perf_counter()
    X, y, groups, _, _ = training_frame("average_voltage", load_curated("average_voltage", ROOT / "data"))
    forest = RandomForestRegressor(
        n_estimators=args.trees, min_samples_leaf=2, max_features=0.3, n_jobs=1, random_state=0
    )
    candidate = Candidate("random_forest", "magpie_v1", forest)
    model = UncertainRegressor(
        candidate.pipeline("average_voltage"),
        n_splits=args.splits,
        coverage=0.9,
        domain_ion_elements=domain_ions("average_voltage"),
        random_state=0,
    ).fit(X, y, groups)
    oof = model.oof_
    a, b = study_pairs(oof["group"].to_numpy())
    yt, p, std = (oof[c].to_numpy(float) for c in ("y_true", "prediction", "std"))
    folds = oof["fold"].to_numpy()[a]
    dy, dp = yt[a] - yt[b], p[a] - p[b]
    z = norm.ppf(0.95)

    rel = _cross_fold_delta(oof, a, b)
    naive_half = z * np.sqrt(std[a] ** 2 + std[b] ** 2)
    dummy_half = np.empty(len(a))
    for fold in np.unique(folds):
        test = folds == fold
        dummy_half[test] = np.quantile(np.abs(dy[~test]), 0.9)
    rows = [
        ("dummy (delta 0)", np.zeros(len(a)), dummy_half, dummy_half),
        ("naive (absolute intervals)", dp, naive_half, naive_half / z),
        ("relative (models.relative)", rel["dp"].to_numpy(), None, rel["std"].to_numpy()),
    ]
    apart = np.abs(dy) >= 0.1
    print(
        f"average_voltage: {len(y)} rows, {len(np.unique(groups))} chemical systems, {args.splits}-fold "
        f"grouped CV by chemical system, random forest {args.trees} trees; {len(a)} within-system pairs "
        f"({int(apart.sum())} >= 0.1 V apart)"
    )
    print(
        f"absolute: MAE {mae(yt, p):.3f} V, 90% coverage {coverage(yt, oof['lower_90'], oof['upper_90']):.3f}"
    )
    table = []
    for name, delta, half, s in rows:
        if half is None:
            lower, upper = rel["lower"].to_numpy(), rel["upper"].to_numpy()
        else:
            lower, upper = delta - half, delta + half
        err = np.abs(dy - delta)
        table.append(
            {
                "method": name,
                "delta_mae_V": mae(dy, delta),
                "coverage_90": coverage(dy, lower, upper),
                "width_90_V": float(np.mean(upper - lower)),
                "spearman_abs_err_std": spearman(err, s) if np.std(s) > 0 else float("nan"),
                # a constant 0 has no sign: n/a for the dummy (50% is chance)
                "sign_right_0.1V": float(np.mean(np.sign(delta[apart]) == np.sign(dy[apart])))
                if np.any(delta)
                else float("nan"),
            }
        )
    print(pd.DataFrame(table).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
