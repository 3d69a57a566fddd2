"""INTERIM campaign logic, used by ``service.campaigns.core`` only while the campaign core
(``screening.campaign`` / ``models.campaign``, issue 14's core half) is not installed. Delete this module
when the core lands: the adapter then calls the core, and these rules must not live on as a second
definition.

It defines no new acquisition math: the acquisition value is ``screening.ranking.rank``'s (EI with the
baseline set to the best value measured so far, else the host; UCB; or the predicted value for
``greedy``), with its filters (in domain unless exploring, thresholds). On top:

* already-measured compositions are excluded (elements + rounded fractions: the same material whatever
  the conditions it was measured under);
* batch diversity: candidates are taken in acquisition order, but a dopant already in the batch waits
  until every other dopant with an eligible candidate has one (a batch is not k fractions of one dopant);
* lab anchoring: per target, predictions and intervals move by a shrunken mean residual of the campaign's
  measured rows, ``k_n * mean(measured - predicted)`` with ``k_n = n / (n + 1)`` (one pseudo-row of
  "no offset" as the prior; with the study-aware retention model's fitted one-anchor share ``k_1`` the
  random-effects form ``n k_1 / (1 + (n - 1) k_1)`` of ``models.relative`` instead).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from models.predictor import PredictorLike
from models.targets import TARGETS, TargetName
from screening.schema import Field, column
from service.campaigns.results import composition_key
from service.campaigns.store import ResultRecord

__all__ = ["AcquisitionSettings", "anchor", "propose"]

_MODES = {"ei": "ei", "ucb": "ucb", "greedy": "value"}


@dataclass(frozen=True)
class AcquisitionSettings:
    """How a round chooses: ``ei`` (expected improvement over the best measured), ``ucb`` (mean + kappa
    std) or ``greedy`` (predicted mean only); out-of-domain candidates only with ``allow_out_of_domain``."""

    kind: Literal["ei", "ucb", "greedy"] = "ei"
    kappa: float = 1.0
    allow_out_of_domain: bool = False

    def __post_init__(self) -> None:
        if self.kind not in _MODES:
            raise ValueError(f"kind: {self.kind!r} (known: {', '.join(_MODES)})")
        if isinstance(self.kappa, bool) or not isinstance(self.kappa, int | float):
            raise ValueError(f"kappa: {self.kappa!r} is not a number")
        if not math.isfinite(self.kappa) or self.kappa < 0:
            raise ValueError(f"kappa: must be a finite number >= 0, got {self.kappa!r}")
        if not isinstance(self.allow_out_of_domain, bool):
            raise ValueError(f"allow_out_of_domain: needs true/false, got {self.allow_out_of_domain!r}")


def _composition(formula: object) -> Any:
    from featurize.composition import CompositionError, parse_formula

    try:
        return parse_formula(formula)
    except CompositionError:
        return None


def _shrinkage(model: Any, n: int) -> float:
    k1 = getattr(getattr(model, "relative_calibration_", None), "anchor_shrinkage", None)
    if isinstance(k1, float) and 0 < k1 <= 1:
        return n * k1 / (1.0 + (n - 1) * k1)
    return n / (n + 1.0)


def anchor(
    scored: pd.DataFrame, predictors: Mapping[TargetName, PredictorLike], measured: Sequence[ResultRecord]
) -> pd.DataFrame:
    """``scored`` with each measured target's prediction and interval offset to this lab (see module)."""
    out = scored.copy()
    for target, predictor in predictors.items():
        rows = [r for r in measured if target.value in r.values]
        if not rows:
            continue
        frame = pd.DataFrame([{"formula": r.formula, **r.conditions} for r in rows])
        answers = predictor.predict_frame(frame)
        ok = (answers["error"] == "").to_numpy()
        if not ok.any():
            continue
        values = np.array([r.values[target.value] for r in rows], dtype=float)
        residual = values[ok] - answers["prediction"].to_numpy(float)[ok]
        offset = _shrinkage(getattr(predictor, "model", None), int(ok.sum())) * float(np.mean(residual))
        bounds = TARGETS[target].value_range
        for field in (Field.PREDICTION, Field.LOWER_90, Field.UPPER_90):
            col = column(target, field)
            shifted = out[col].to_numpy(float) + offset
            out[col] = np.clip(shifted, *bounds) if bounds is not None else shifted
        out[f"{target.value}_lab_offset"] = offset
    return out


def _best_measured(measured: Sequence[ResultRecord], objective: Any) -> float | None:
    values = [r.values[objective.target] for r in measured if objective.target in r.values]
    if not values:
        return None
    return float(max(values) if objective.direction == "max" else min(values))


def propose(
    scored: pd.DataFrame,
    measured: Sequence[ResultRecord],
    objectives: Sequence[Any],
    settings: AcquisitionSettings,
    k: int,
    *,
    seed: int,
) -> pd.DataFrame:
    """The k proposals, best first, each with its acquisition value and the reason it was chosen."""
    from screening.ranking import parse_ranking, rank

    targets = [str(o.target) for o in objectives]
    baseline = {o.target: b for o in objectives if (b := _best_measured(measured, o)) is not None}
    config = parse_ranking(
        {
            "mode": _MODES[settings.kind],
            "objectives": [
                {"target": o.target, "direction": o.direction, "weight": o.weight, "threshold": o.threshold}
                for o in objectives
            ],
            "kappa": float(settings.kappa),
            "baseline": baseline or "host",
            "in_domain_only": not settings.allow_out_of_domain,
        },
        targets,
    )
    ranked = rank(scored, config)
    done = {composition_key(c) for r in measured if (c := _composition(r.formula)) is not None}
    keys = [composition_key(c) if (c := _composition(f)) is not None else None for f in ranked["formula"]]
    fresh = np.array([key not in done for key in keys], dtype=bool)
    pool = ranked[ranked["eligible"].to_numpy(bool) & fresh]
    # ties in the acquisition value are broken by the round's seed, reproducibly
    jitter = np.random.default_rng(seed).random(len(pool))
    pool = pool.assign(_tie=jitter).sort_values(["score", "_tie"], ascending=[False, True], kind="stable")
    chosen = _diverse(pool, k)
    return _explain(chosen, objectives, config, baseline)


def _diverse(pool: pd.DataFrame, k: int) -> pd.DataFrame:
    """Round-robin over dopants in acquisition order (see module)."""
    picked: list[int] = []
    used: set[str] = set()
    dopants = pool["dopant"].astype(str).to_numpy() if "dopant" in pool.columns else np.full(len(pool), "")
    while len(picked) < min(k, len(pool)):
        took = False
        for i, dopant in enumerate(dopants):
            if i in picked or dopant in used:
                continue
            picked.append(i)
            used.add(str(dopant))
            took = True
            break
        if not took:  # every dopant left is in the batch already: start the next pass over the dopants
            used = set()
    return pool.iloc[picked].drop(columns=["_tie"])


def _explain(
    chosen: pd.DataFrame, objectives: Sequence[Any], config: Any, baseline: Mapping[str, float]
) -> pd.DataFrame:
    out = chosen.reset_index(drop=True).copy()
    out.insert(0, "proposal", np.arange(1, len(out) + 1))
    out["acquisition"] = out["score"].astype(float)
    reasons = []
    for _, row in out.iterrows():
        bits = []
        for o in objectives:
            unit = TARGETS[TargetName(o.target)].unit
            mean, std = row[column(o.target, Field.PREDICTION)], row[column(o.target, Field.STD)]
            bits.append(f"{o.target} {mean:.3g} +- {std:.2g} {unit}")
        what = {
            "ei": "EI over the best measured" if baseline else "EI over the host",
            "ucb": "UCB",
            "value": "mean",
        }
        reasons.append(
            f"{what[config.mode]} {row['acquisition']:.3g}; predicted "
            + ", ".join(bits)
            + f"; {row.get('dopant', '')} x={row.get('fraction', float('nan')):g}"
        )
    out["reason"] = reasons
    return out
