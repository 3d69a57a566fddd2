"""INTERIM lab anchoring, used by ``service.campaigns.core`` only while ``models.campaign`` (issue 14's
core half: anchoring and refit) is not installed. Delete this module when it lands: the adapter then
calls ``models.campaign.anchor_scores``, and this rule must not live on as a second definition.

Per target, predictions and intervals move by a shrunken mean residual of the campaign's measured
rows, ``k_n * mean(measured - predicted)`` with ``k_n = n / (n + 1)`` (one pseudo-row of "no offset" as
the prior); with the study-aware retention model's fitted one-anchor share ``k_1``, the random-effects
form ``n k_1 / (1 + (n - 1) k_1)`` of ``models.relative`` instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from models.predictor import PredictorLike
from models.targets import TARGETS, TargetName
from screening.schema import Field, column
from service.campaigns.store import ResultRecord

__all__ = ["anchor"]


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
