"""Honest evaluation: pure metric functions, grouped-CV reports and a dummy (median) baseline.

Every report takes an optional boolean ``mask`` of the rows to score, so a caller excludes censored labels
(upper bounds such as "<1E-10") from regression metrics, or scores a subset (e.g. Na rows only), without
refitting anything. The dummy baseline is evaluated on the *same* grouped folds as the model, with its own
conformal interval calibrated the same honest way (other folds only), so its coverage is comparable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from models.conformal import conformal_quantile, normal_quantile

METRIC_NAMES = ("n", "mae", "rmse", "r2", "spearman", "coverage_90", "interval_width_90")


def _pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(y_pred, dtype=float)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D of the same length, got {y.shape} and {p.shape}")
    return y, p


def mae(y_true: Any, y_pred: Any) -> float:
    y, p = _pair(y_true, y_pred)
    return float(np.mean(np.abs(y - p))) if len(y) else float("nan")


def rmse(y_true: Any, y_pred: Any) -> float:
    y, p = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((y - p) ** 2))) if len(y) else float("nan")


def r2(y_true: Any, y_pred: Any) -> float:
    """Coefficient of determination; NaN when y is constant or has fewer than 2 rows."""
    y, p = _pair(y_true, y_pred)
    if len(y) < 2:
        return float("nan")
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    if ss_tot == 0.0:
        return float("nan")
    return 1.0 - float(np.sum((y - p) ** 2)) / ss_tot


def spearman(y_true: Any, y_pred: Any) -> float:
    """Spearman rank correlation; NaN when either side is constant or has fewer than 2 rows."""
    y, p = _pair(y_true, y_pred)
    if len(y) < 2 or np.all(y == y[0]) or np.all(p == p[0]):
        return float("nan")
    return float(spearmanr(y, p).statistic)


def coverage(y_true: Any, lower: Any, upper: Any) -> float:
    """Share of rows with lower <= y <= upper."""
    y = np.asarray(y_true, dtype=float)
    lo = np.asarray(lower, dtype=float)
    hi = np.asarray(upper, dtype=float)
    if not (y.shape == lo.shape == hi.shape):
        raise ValueError(
            f"y, lower and upper must have the same shape, got {y.shape}, {lo.shape}, {hi.shape}"
        )
    return float(np.mean((y >= lo) & (y <= hi))) if len(y) else float("nan")


def mean_interval_width(lower: Any, upper: Any) -> float:
    lo = np.asarray(lower, dtype=float)
    hi = np.asarray(upper, dtype=float)
    return float(np.mean(hi - lo)) if len(lo) else float("nan")


def _mask(mask: Any, n: int) -> np.ndarray:
    if mask is None:
        return np.ones(n, dtype=bool)
    m = np.asarray(mask)
    if m.dtype != bool or m.shape != (n,):
        raise ValueError(f"mask must be a boolean array of length {n}, got dtype {m.dtype} shape {m.shape}")
    return m


def regression_metrics(
    y_true: Any, y_pred: Any, lower: Any = None, upper: Any = None, *, mask: Any = None
) -> dict[str, float]:
    """n, MAE, RMSE, R2, Spearman and (with an interval) 90% coverage and mean width, on ``mask`` rows."""
    y, p = _pair(y_true, y_pred)
    m = _mask(mask, len(y))
    y, p = y[m], p[m]
    out = {
        "n": float(len(y)),
        "mae": mae(y, p),
        "rmse": rmse(y, p),
        "r2": r2(y, p),
        "spearman": spearman(y, p),
    }
    if lower is not None and upper is not None:
        lo = np.asarray(lower, dtype=float)[m]
        hi = np.asarray(upper, dtype=float)[m]
        out["coverage_90"] = coverage(y, lo, hi)
        out["interval_width_90"] = mean_interval_width(lo, hi)
    else:
        out["coverage_90"] = out["interval_width_90"] = float("nan")
    return out


def grouped_cv_report(oof: pd.DataFrame, mask: Any = None) -> dict[str, float]:
    """Metrics of an out-of-fold table (``UncertainRegressor.oof_`` or ``dummy_median_oof``) + n_groups."""
    missing = {"y_true", "prediction", "lower_90", "upper_90", "group"} - set(oof.columns)
    if missing:
        raise ValueError(f"out-of-fold table lacks columns: {', '.join(sorted(missing))}")
    m = _mask(mask, len(oof))
    report = regression_metrics(
        oof["y_true"].to_numpy(),
        oof["prediction"].to_numpy(),
        oof["lower_90"].to_numpy(),
        oof["upper_90"].to_numpy(),
        mask=m,
    )
    report["n_groups"] = float(pd.Series(oof["group"].to_numpy()[m]).nunique())
    return report


def dummy_median_oof(
    y: Any, folds: Any, groups: Any = None, *, coverage: float = 0.9, train_mask: Any = None
) -> pd.DataFrame:
    """The median baseline on given grouped folds, in the ``oof_`` layout.

    Each fold is predicted by the median of the other folds' ``train_mask`` rows; its interval is
    median +- q with q the conformal quantile of the other folds' out-of-fold absolute residuals (rows in
    ``train_mask``), i.e. calibrated exactly like the model's out-of-fold intervals. ``groups`` only fills
    the ``group`` column (default: the fold ids).
    """
    y_arr = np.asarray(y, dtype=float)
    f = np.asarray(folds)
    g = f if groups is None else np.asarray(groups)
    if not (y_arr.shape == f.shape == g.shape) or y_arr.ndim != 1:
        raise ValueError("y, folds and groups must be 1-D of the same length")
    use = _mask(train_mask, len(y_arr))
    fold_ids = np.unique(f)
    if len(fold_ids) < 2:
        raise ValueError("the dummy baseline needs at least 2 folds")
    pred = np.empty_like(y_arr)
    for k in fold_ids:
        train = (f != k) & use
        if not train.any():
            raise ValueError(f"fold {k}: no training rows outside it")
        pred[f == k] = np.median(y_arr[train])
    half = np.empty_like(y_arr)
    for k in fold_ids:
        cal = (f != k) & use
        half[f == k] = conformal_quantile(np.abs(y_arr[cal] - pred[cal]), coverage)
    z = normal_quantile(coverage)
    return pd.DataFrame(
        {
            "y_true": y_arr,
            "prediction": pred,
            "std": half / z,
            "lower_90": pred - half,
            "upper_90": pred + half,
            "group": g,
            "fold": f,
        }
    )


def baseline_comparison(
    oof: pd.DataFrame, *, mask: Any = None, train_mask: Any = None, coverage: float = 0.9
) -> pd.DataFrame:
    """Model vs dummy median on the model's own grouped folds: one row each, columns METRIC_NAMES + n_groups.

    ``mask``: rows scored (e.g. uncensored); ``train_mask``: rows the dummy may learn its median from
    (default: the scored rows).
    """
    dummy = dummy_median_oof(
        oof["y_true"].to_numpy(),
        oof["fold"].to_numpy(),
        oof["group"].to_numpy(),
        coverage=coverage,
        train_mask=mask if train_mask is None else train_mask,
    )
    rows = {"model": grouped_cv_report(oof, mask), "dummy_median": grouped_cv_report(dummy, mask)}
    return pd.DataFrame.from_dict(rows, orient="index")


def subset_reports(oof: pd.DataFrame, subsets: Mapping[str, Any]) -> pd.DataFrame:
    """One grouped-CV report per named boolean mask (e.g. {"all": ..., "Na only": ...}), as rows."""
    return pd.DataFrame.from_dict(
        {name: grouped_cv_report(oof, m) for name, m in subsets.items()}, orient="index"
    )


# ----------------------------------------------------------------------------- within-study pairs (retention)
MIN_PAIR_GAP = 5.0  # points of retention: closer pairs are within the measurement scatter of one lab


def within_study_pairs(
    groups: Any, formulas: Any, y: Any, *, same: Any = None, min_gap: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (a, b) of rows of one study (same ``groups`` value) with different formulas, equal
    ``same`` keys (e.g. the cycle count; None: any) and ``|y_a - y_b| >= min_gap``; a < b."""
    g = np.asarray(groups)
    f = np.asarray(formulas, dtype=object)
    y_arr = np.asarray(y, dtype=float)
    key = np.zeros(len(g)) if same is None else np.asarray(same)
    frame = pd.DataFrame({"g": g.astype(str), "k": key, "i": np.arange(len(g))})
    first: list[np.ndarray] = []
    second: list[np.ndarray] = []
    for _, block in frame.groupby(["g", "k"], sort=False):
        idx = block["i"].to_numpy()
        if len(idx) < 2:
            continue
        a, b = np.triu_indices(len(idx), k=1)
        a, b = idx[a], idx[b]
        keep = (f[a] != f[b]) & (np.abs(y_arr[a] - y_arr[b]) >= min_gap)
        first.append(a[keep])
        second.append(b[keep])
    if not first:
        return np.empty(0, dtype=int), np.empty(0, dtype=int)
    return np.concatenate(first), np.concatenate(second)


def pair_concordance(y: Any, pred: Any, a: np.ndarray, b: np.ndarray) -> float:
    """Share of pairs ordered like the measurement (a prediction tie counts one half); NaN: no pairs."""
    if len(a) == 0:
        return float("nan")
    y_arr = np.asarray(y, dtype=float)
    p = np.asarray(pred, dtype=float)
    dy = np.sign(y_arr[a] - y_arr[b])
    dp = np.sign(p[a] - p[b])
    return float(np.mean(np.where(dp == 0, 0.5, dy == dp)))
