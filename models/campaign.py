"""What a campaign's lab measurements teach the models: rows for the target's curated table, the lab offset
(anchoring predictions to this lab), and the refit of the champion's pipeline with the campaign's rows.

* ``campaign_rows``: ``screening.campaign.Measurement`` -> rows of the target's curated table (formula,
  label, the predictor's condition inputs), their group (``source`` / ``doi`` / ``chemsys``) set to
  ``campaign:<name>`` so grouped CV holds the campaign out as one study.
* ``lab_offset``: the shared offset of this lab, ``k_n x mean(measured - predicted)``
  (``models.relative.anchor_weight``; the one-anchor weight ``k1`` is the model's own held-out estimate:
  ``RelativeCalibration.anchor_shrinkage`` for retention, ``models.relative.anchor_shrinkage`` on the
  model's out-of-fold table for the others). Intervals are rescaled as measured: the leave-one-out
  anchored residuals of the lab's rows against the model's std, blended with a prior of
  ``STD_PRIOR_ROWS`` rows at scale 1 (so 2 rows cannot collapse an interval). Applying it to a screening
  score table is ``screening.campaign.anchor_scores``.
* ``refit_with_campaign``: the champion's own estimator (same pipeline, same hyperparameters; no model
  re-selection) fitted on base + campaign rows: ``sklearn.base.clone(model).fit(X, y, groups)``, so the
  result is the same artifact type (conformal intervals and domain included) the Predictor serves.
* ``refit_and_register``: the refit as a new MLflow run and a registered version with alias
  ``campaign-<name>``; ``@champion`` is never moved (``models.tracking.register_alias``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone

from models.evaluation import mae
from models.features import input_spec
from models.measurements import Measurement
from models.predictor import PredictorLike
from models.relative import anchor_shrinkage, anchor_weight, study_pairs
from models.targets import TargetName, get_target

__all__ = [
    "DEFAULT_K1",
    "MIN_REFIT_ROWS",
    "STD_PRIOR_ROWS",
    "CampaignRefit",
    "LabOffset",
    "alias_name",
    "campaign_group",
    "campaign_rows",
    "lab_offset",
    "load_campaign_model",
    "measured_predictions",
    "one_anchor_weight",
    "refit_and_register",
    "refit_metrics",
    "refit_with_campaign",
]

#: Campaign rows of one target before a refit. Below this, the shared lab offset already takes what a few
#: rows of one new study can teach (a forest on ~800-4000 rows barely moves for 1-4 rows of a new group);
#: from one full batch (k = 4..8 proposals, at least 5 measured) the within-lab trend can start to count.
MIN_REFIT_ROWS = 5
#: Pseudo-rows at std scale 1 in the measured interval rescaling (``LabOffset.std_scale``).
STD_PRIOR_ROWS = 5
#: One-anchor weight when a model carries no held-out table to estimate it from.
DEFAULT_K1 = 0.5
_STD_SCALE_BOUNDS = (0.3, 3.0)
_NAME = re.compile(r"[A-Za-z0-9_-]{1,60}")


def _check_name(campaign: str) -> str:
    if not isinstance(campaign, str) or not _NAME.fullmatch(campaign):
        raise ValueError(f"campaign name {campaign!r}: use 1-60 letters, digits, '_' or '-'")
    return campaign


def campaign_group(campaign: str) -> str:
    """The group (study) label of a campaign's rows: ``campaign:<name>``."""
    return f"campaign:{_check_name(campaign)}"


def alias_name(campaign: str) -> str:
    """The registry alias of a campaign's refit: ``campaign-<name>``."""
    return f"campaign-{_check_name(campaign)}"


def _measurements_of(target: TargetName, measured: Sequence[Measurement]) -> list[Measurement]:
    return [m for m in measured if m.target is target]


def _input_frame(target: TargetName, measured: Sequence[Measurement]) -> pd.DataFrame:
    """The predictor's input rows of measurements: formula + the target's condition columns present in
    any measurement (missing values NaN: the model imputes as for any input)."""
    spec = input_spec(target)
    keys = [c for c in spec.columns if c != "formula" and any(c in m.conditions for m in measured)]
    rows = [{"formula": m.formula, **{c: m.conditions.get(c, np.nan) for c in keys}} for m in measured]
    return pd.DataFrame(rows, columns=["formula", *keys])


def campaign_rows(
    target: TargetName | str, measured: Sequence[Measurement], *, campaign: str
) -> pd.DataFrame:
    """The measurements of ``target`` as rows of its curated table (formula, label column, conditions, group
    column ``campaign:<name>``, ``censored`` False, ``round``); other targets' measurements are ignored."""
    tgt = get_target(target)
    mine = _measurements_of(tgt.name, measured)
    frame = _input_frame(tgt.name, mine)
    frame[tgt.value_column] = np.array([m.value for m in mine], dtype=float)
    frame[tgt.group_column] = campaign_group(campaign)
    frame["censored"] = False
    frame["round"] = np.array([m.round for m in mine], dtype=np.int64)
    return frame


def one_anchor_weight(model: Any) -> tuple[float, str]:
    """(k1, where it came from): the share of one measured row's residual that carries over to another
    row of the same study, as held out by the model's own grouped CV."""
    cal = getattr(model, "relative_calibration_", None)
    if cal is not None:
        return float(cal.anchor_shrinkage), "relative calibration (held-out papers)"
    oof = getattr(model, "oof_", None)
    if isinstance(oof, pd.DataFrame) and {"y_true", "prediction", "group"} <= set(oof.columns):
        a, b = study_pairs(oof["group"].to_numpy())
        if len(a):
            return anchor_shrinkage(oof, a, b), f"held-out pairs of one study ({len(a)})"
    return DEFAULT_K1, "default (the model has no held-out table)"


@dataclass(frozen=True)
class LabOffset:
    """This lab's shared offset for one target: ``offset`` (target units, added to predictions), from ``n``
    measured rows with weight ``shrinkage`` (k_n) on their mean residual; ``std_scale`` multiplies the
    model's std and interval half-widths; ``source`` says where k1 came from."""

    target: TargetName
    offset: float
    n: int
    shrinkage: float
    std_scale: float
    mean_residual: float
    source: str

    def as_dict(self) -> dict[str, float | int | str]:
        return {
            "offset": self.offset,
            "n": self.n,
            "shrinkage": self.shrinkage,
            "std_scale": self.std_scale,
            "mean_residual": self.mean_residual,
            "source": self.source,
        }


def _raw_predictions(predictor: PredictorLike, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(unclipped mean, std) per row; raises ValueError naming a row the predictor rejects."""
    answer = predictor.predict_frame(frame)
    for i, err in enumerate(answer["error"]):
        if err:
            raise ValueError(f"measured row {i} ({frame['formula'].iloc[i]!r}): {err}")
    model = getattr(predictor, "model", None)
    if model is not None and hasattr(model, "predict"):
        mean = np.asarray(model.predict(frame), dtype=float)
    else:
        mean = answer["prediction"].to_numpy(float)
    return mean, answer["std"].to_numpy(float)


def measured_predictions(
    predictor: PredictorLike, measured: Sequence[Measurement], target: TargetName | str
) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) of ``predictor`` at the measurements of ``target`` (in their order), the mean clipped to
    the target's physical range as a score table's is; ValueError naming a row the predictor rejects."""
    name = TargetName(target)
    mine = _measurements_of(name, measured)
    if not mine:
        return np.zeros(0), np.zeros(0)
    mean, std = _raw_predictions(predictor, _input_frame(name, mine))
    bounds = get_target(name).value_range
    return (np.clip(mean, *bounds) if bounds is not None else mean), std


def _std_scale(residuals: np.ndarray, std: np.ndarray, k1: float) -> float:
    """Measured interval scale: leave-one-out anchored residuals over the model's std, blended with
    ``STD_PRIOR_ROWS`` pseudo-rows at scale 1."""
    n = residuals.size
    if n < 2:
        return 1.0
    total = residuals.sum()
    loo = np.array(
        [residuals[i] - anchor_weight(n - 1, k1) * (total - residuals[i]) / (n - 1) for i in range(n)]
    )
    denom = float(np.mean(np.maximum(std, 1e-12) ** 2))
    ratio2 = float(np.mean(loo**2)) / denom
    blended = (n * ratio2 + STD_PRIOR_ROWS) / (n + STD_PRIOR_ROWS)
    return float(np.clip(np.sqrt(blended), *_STD_SCALE_BOUNDS))


def lab_offset(
    predictor: PredictorLike, measured: Sequence[Measurement], target: TargetName | str
) -> LabOffset:
    """The shrunken shared offset of ``target`` from the measurements of it (zero offset when none)."""
    name = TargetName(target)
    mine = _measurements_of(name, measured)
    k1, source = one_anchor_weight(getattr(predictor, "model", None))
    if not mine:
        return LabOffset(name, 0.0, 0, 0.0, 1.0, float("nan"), source)
    frame = _input_frame(name, mine)
    mean, std = _raw_predictions(predictor, frame)
    values = np.array([m.value for m in mine], dtype=float)
    residuals = values - mean
    k = anchor_weight(len(mine), k1)
    return LabOffset(
        target=name,
        offset=float(k * residuals.mean()),
        n=len(mine),
        shrinkage=k,
        std_scale=_std_scale(residuals, std, k1),
        mean_residual=float(residuals.mean()),
        source=source,
    )


def refit_with_campaign(
    model: Any, base_table: pd.DataFrame, rows: pd.DataFrame, target: TargetName | str
) -> Any:
    """A clone of ``model`` (its pipeline and hyperparameters, unfitted) fitted on ``base_table`` + ``rows``
    (``campaign_rows``) with the target's grouped CV: no model re-selection."""
    from models.training import training_frame  # heavy (estimators): only when refitting

    tgt = get_target(target)
    missing = {tgt.value_column, tgt.group_column, "formula"} - set(rows.columns)
    if missing:
        raise ValueError(f"campaign rows lack column(s) {sorted(missing)}")
    table = pd.concat([base_table, rows.drop(columns=["round"], errors="ignore")], ignore_index=True)
    if "censored" in table.columns:
        # a table without the column (retention, voltage) gets NaN for its rows in the concat, and NaN is
        # truthy: training_frame would drop every base row as censored and fit the campaign rows alone
        table["censored"] = table["censored"].astype("boolean").fillna(False).astype(bool)
    X, y, groups, _, _ = training_frame(tgt.name, table)
    return clone(model).fit(X, y, groups)


def refit_metrics(model: Any, group: str) -> dict[str, float]:
    """Held-out metrics of a refit: ``cv_mae``/``dummy_mae`` (grouped CV, all rows, dummy median beside),
    ``campaign_heldout_mae`` (the campaign's rows predicted by the CV fold that did not see them) and
    ``campaign_heldout_dummy_mae`` (the train-fold median), ``campaign_rows``."""
    from models.training import metrics_table

    oof = model.oof_.reset_index(drop=True)
    table = metrics_table(oof)
    out: dict[str, float] = {}
    for _, row in table.loc[table["scope"] == "all"].iterrows():
        key = "cv" if row["model"] == "nascreen" else "dummy"
        out[f"{key}_mae"] = float(row["mae"])
    mask = (oof["group"].astype(str) == group).to_numpy()
    out["campaign_rows"] = float(mask.sum())
    if mask.any():
        out["campaign_heldout_mae"] = mae(oof["y_true"][mask], oof["prediction"][mask])
        fold = oof["fold"].to_numpy()[mask][0]
        median = float(np.median(oof["y_true"].to_numpy()[oof["fold"].to_numpy() != fold]))
        out["campaign_heldout_dummy_mae"] = float(np.mean(np.abs(oof["y_true"][mask] - median)))
    return out


@dataclass(frozen=True)
class CampaignRefit:
    """A registered campaign refit: registry ``version``, MLflow ``run_id``, held-out ``metrics``, the
    number of campaign rows it learnt from, the ``base_version`` (champion) it started from, the model."""

    target: TargetName
    version: str
    run_id: str
    alias: str
    metrics: dict[str, float]
    n_rows: int
    base_version: str
    model: Any


def refit_and_register(
    target: TargetName | str,
    measured: Sequence[Measurement],
    *,
    campaign: str,
    tracking_uri: str,
    data_dir: Path,
    project_root: Path | None = None,
) -> CampaignRefit:
    """Refit the champion of ``target`` with the campaign's rows, log the run and register it with alias
    ``campaign-<name>`` (``@champion`` untouched). Raises ValueError below ``MIN_REFIT_ROWS`` rows."""
    from models.data.loader import load_curated
    from models.tracking import load_champion, log_training_run, register_alias
    from models.training import training_frame

    tgt = get_target(target)
    rows = campaign_rows(tgt.name, measured, campaign=campaign)
    if len(rows) < MIN_REFIT_ROWS:
        raise ValueError(
            f"campaign {campaign!r}: {len(rows)} measured {tgt.name.value} row(s); a refit needs at least "
            f"{MIN_REFIT_ROWS} (the lab offset already uses them)"
        )
    champion, base_version = load_champion(tgt.name, tracking_uri)
    base = load_curated(tgt.name, data_dir)
    start = time.perf_counter()
    model = refit_with_campaign(champion, base, rows, tgt.name)
    seconds = time.perf_counter() - start
    metrics = {**refit_metrics(model, campaign_group(campaign)), "train_seconds": seconds}
    alias = alias_name(campaign)
    card = (
        f"# {tgt.name.value}: campaign {campaign} refit\n\n"
        f"The champion (version {base_version}) pipeline and "
        f"hyperparameters refitted on the curated table + {len(rows)} campaign rows (group "
        f"{campaign_group(campaign)}); no model re-selection. Held-out metrics (grouped CV, dummy median "
        f"beside):\n\n" + "\n".join(f"- {k}: {v:.4g}" for k, v in metrics.items()) + "\n"
    )
    X, _, _, _, _ = training_frame(tgt.name, rows.drop(columns=["round"]))
    logged = log_training_run(
        tracking_uri=tracking_uri,
        target=tgt.name,
        model=model,
        input_example=X,
        params={
            "target": tgt.name.value,
            "campaign": campaign,
            "base_version": base_version,
            "campaign_rows": len(rows),
            "base_rows": len(base),
            "model": type(champion.estimator[-1]).__name__,
        },
        metrics=metrics,
        figures={},
        model_card=card,
        tables={"campaign_rows": rows},
        tags={
            "nascreen.campaign": campaign,
            "nascreen.base_version": base_version,
            "nascreen.kind": "campaign",
        },
        project_root=project_root,
    )
    version = register_alias(tracking_uri=tracking_uri, target=tgt.name, logged=logged, alias=alias)
    return CampaignRefit(tgt.name, version, logged.run_id, alias, metrics, len(rows), base_version, model)


def load_campaign_model(target: TargetName | str, campaign: str, tracking_uri: str) -> tuple[Any, str]:
    """(model, version) registered as ``campaign-<name>`` (LookupError when the campaign has no refit)."""
    from models.tracking import load_alias

    return load_alias(target, alias_name(campaign), tracking_uri)
