"""Studies reported beside the grouped-CV metrics (pure; tables out):

- ``li_helps_na``: does adding the Li rows to training help predict Na conductivity? Grouped CV on the Na
  rows only (groups = source paper); each fold is predicted by the same pipeline trained (a) on the other
  Na folds only and (b) on those plus every Li row whose source is not in the test fold. The mobile ion
  enters as the Na and Li atomic fractions (``models.features``).
- ``obelix_benchmark``: the OBELiX official split (train on its train rows only, test on its test rows),
  beside the published figures (median baseline ~2.16, random forest ~1.5-1.6 log10 S/cm).
- ``seed_checks``: the model's answers for the seed-paper compositions vs the measured values (reported,
  never tuned to): conductivities of NHOC/NZOC/NTOC/Na2HfCl6 with their domain flags, retention of
  NLMO/NLMRO (direction), the high-entropy O3 and NMNFO.
"""

from __future__ import annotations

import math
import re
from typing import Any, Protocol

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold

from models.evaluation import regression_metrics
from models.targets import TargetName

# Published OBELiX figures (Therrien et al. 2025), test MAE in log10(S/cm).
OBELIX_PUBLISHED = {"median baseline (published)": 2.16, "random forest (published)": 1.55}


class PipelineSource(Protocol):
    """A candidate (``models.training.Candidate``) that builds a fresh pipeline."""

    def pipeline(self, target: TargetName) -> Any: ...


def _point_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    row = regression_metrics(y, pred)
    out = {k: row[k] for k in ("mae", "rmse", "r2", "spearman")}
    return {"n": int(row["n"]), **out}


def li_helps_na(
    kept: pd.DataFrame,
    X: pd.DataFrame,
    y: np.ndarray,
    groups: np.ndarray,
    candidate: PipelineSource,
    n_splits: int,
    random_state: int,
) -> pd.DataFrame:
    """Na-only vs Na+Li training, scored on held-out Na sources (same folds for both)."""
    ion = kept["mobile_ion"].to_numpy()
    na = np.flatnonzero(ion == "Na")
    li = np.flatnonzero(ion == "Li")
    n_groups = len(set(groups[na]))
    if len(na) < 10 or n_groups < 2:
        return pd.DataFrame()
    cv = GroupKFold(n_splits=min(n_splits, n_groups), shuffle=True, random_state=random_state)
    pred_na = np.empty(len(na))
    pred_joint = np.empty(len(na))
    pred_dummy = np.empty(len(na))
    for train, test in cv.split(na, y[na], groups[na]):
        train_rows = na[train]
        test_rows = na[test]
        held_out = set(groups[test_rows])
        li_rows = li[[g not in held_out for g in groups[li]]]
        joint_rows = np.concatenate([train_rows, li_rows])
        model_na = candidate.pipeline(TargetName.IONIC_CONDUCTIVITY).fit(X.iloc[train_rows], y[train_rows])
        model_joint = candidate.pipeline(TargetName.IONIC_CONDUCTIVITY).fit(X.iloc[joint_rows], y[joint_rows])
        pred_na[test] = model_na.predict(X.iloc[test_rows])
        pred_joint[test] = model_joint.predict(X.iloc[test_rows])
        pred_dummy[test] = np.median(y[train_rows])
    y_na = y[na]
    rows = [
        {"training": "Na rows only", "metric_key": "na_only_mae", **_point_metrics(y_na, pred_na)},
        {"training": "Na + Li rows (joint)", "metric_key": "joint_mae", **_point_metrics(y_na, pred_joint)},
        {
            "training": "dummy median of Na rows",
            "metric_key": "dummy_mae",
            **_point_metrics(y_na, pred_dummy),
        },
    ]
    table = pd.DataFrame(rows)
    # paired per-row difference in absolute error vs Na-only training (negative: that setting is better)
    base = np.abs(y_na - pred_na)
    diffs = [np.abs(y_na - p) - base for p in (pred_na, pred_joint, pred_dummy)]
    table["mae_minus_na_only"] = [float(d.mean()) for d in diffs]
    table["paired_se"] = [float(d.std(ddof=1) / np.sqrt(len(d))) for d in diffs]
    table["value"] = table["mae"]
    return table


def obelix_benchmark(table: pd.DataFrame, candidate: PipelineSource) -> pd.DataFrame:
    """Train on OBELiX train rows (uncensored), test on OBELiX test rows.

    Reported twice: on the uncensored test rows, and with censored test labels scored at their bound
    (log10 of the "<1E-10" value), which is how a point benchmark has to treat them."""
    obelix = table.loc[table["dataset"] == "obelix"]
    train = obelix.loc[(obelix["obelix_split"] == "train") & ~obelix["censored"].astype(bool)]
    test = obelix.loc[obelix["obelix_split"] == "test"]
    if len(train) < 20 or len(test) == 0:
        return pd.DataFrame()
    X_train = train[["formula"]].reset_index(drop=True)
    y_train = train["log10_sigma_s_cm"].to_numpy(float)
    model = candidate.pipeline(TargetName.IONIC_CONDUCTIVITY).fit(X_train, y_train)
    pred = model.predict(test[["formula"]].reset_index(drop=True))
    y_test = test["log10_sigma_s_cm"].to_numpy(float)
    censored = test["censored"].astype(bool).to_numpy()
    median = float(np.median(y_train))
    rows: list[dict[str, Any]] = []
    for key, label, mask in (
        ("uncensored", "uncensored test rows", ~censored),
        ("all", "all test rows, censored at bound", np.ones_like(censored)),
    ):
        n = int(mask.sum())
        for model_name, prefix, predicted in (
            ("nascreen", "nascreen", pred[mask]),
            ("dummy median (ours)", "dummy", np.full(n, median)),
        ):
            metrics = _point_metrics(y_test[mask], predicted)
            rows.append(
                {"model": model_name, "test rows": label, "metric_key": f"{prefix}_mae_{key}", **metrics}
            )
    for name, mae in OBELIX_PUBLISHED.items():
        rows.append(
            {"model": name, "test rows": "official test split", "metric_key": "", "n": len(test), "mae": mae}
        )
    out = pd.DataFrame(rows)
    out["value"] = out["mae"]
    out["n_train"] = len(train)
    return out


# ---------------------------------------------------------------------------------------- seed checks
_CYCLES = re.compile(r"after (\d+) cycles")
_WINDOW = re.compile(r"(\d(?:\.\d+)?)\s*-\s*(\d(?:\.\d+)?)\s*V")
_CURRENT = re.compile(r"(?<![=\d.])\s(\d+(?:\.\d+)?)\s*mA/g")


def seed_inputs(target: TargetName, facts: pd.DataFrame) -> pd.DataFrame:
    """Seed-fact rows usable as checks for ``target``, as model inputs + the measured value."""
    if target is TargetName.IONIC_CONDUCTIVITY:
        rows = facts.loc[(facts["property"] == "ionic_conductivity_S_cm") & (facts["formula"] != "")]
        rows = rows.loc[rows["qualifier"] == "="]
        return pd.DataFrame(
            {
                "material": rows["material_label"].to_numpy(),
                "formula": rows["formula"].to_numpy(),
                "measured": [math.log10(float(v)) for v in rows["value"]],
            }
        )
    if target is TargetName.CAPACITY_RETENTION:
        rows = facts.loc[
            (facts["property"] == "capacity_retention_pct")
            & facts["property_detail"].str.contains("retention after", regex=False)
        ]
        out = []
        for _, r in rows.iterrows():
            cycles = _CYCLES.search(r["property_detail"])
            window = _WINDOW.search(r["conditions"])
            # "1C = 200 mA/g" defines the rate; only a current given on its own is the test current
            text = re.sub(r"1(?:\.0)?\s*C\s*=\s*[\d.]+\s*mAh?/g", "", r["conditions"])
            current = _CURRENT.search(text)
            out.append(
                {
                    "material": r["material_label"],
                    "formula": r["formula"],
                    "cycles": float(cycles.group(1)) if cycles else np.nan,
                    "current_mA_g": float(current.group(1)) if current else np.nan,
                    "voltage_low_V": float(window.group(1)) if window else np.nan,
                    "voltage_high_V": float(window.group(2)) if window else np.nan,
                    "measured": float(r["value"]),
                }
            )
        return pd.DataFrame(out)
    return pd.DataFrame()  # the seed papers state no average voltage


def seed_checks(target: TargetName, model: Any, facts: pd.DataFrame) -> pd.DataFrame:
    """Predictions (with interval and domain flag) for the seed compositions beside the measured values."""
    inputs = seed_inputs(target, facts)
    if inputs.empty:
        return inputs
    answers = model.predict_with_uncertainty(inputs.drop(columns=["material", "measured"]))
    out = pd.concat([inputs.reset_index(drop=True), answers.reset_index(drop=True)], axis=1)
    out["inside_90"] = (out["measured"] >= out["lower_90"]) & (out["measured"] <= out["upper_90"])
    return out.drop(columns=[c for c in ("knn_distance",) if c in out.columns])
