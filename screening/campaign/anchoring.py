"""A screening score table anchored to the campaign's lab: per target, the lab offset of
``models.campaign.lab_offset`` added to the predictions, std and interval half-widths rescaled as
measured (clipped to the target's physical range). Pure: the predictors are passed in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from models.campaign import LabOffset, lab_offset
from models.measurements import Measurement
from models.predictor import PredictorLike
from models.targets import TARGETS, TargetName
from screening.schema import Field, column

__all__ = ["anchor_scores", "apply_offset"]


def apply_offset(scored: pd.DataFrame, lab: LabOffset) -> pd.DataFrame:
    """``scored`` with one target's predictions shifted by the offset and its std / interval half-widths
    scaled by ``std_scale`` (clipped to the target's physical range). A copy; the same rows and index."""
    out = scored.copy()
    t = lab.target
    pred_col = column(t, Field.PREDICTION)
    if pred_col not in out.columns or lab.n == 0:
        return out
    pred = pd.to_numeric(out[pred_col], errors="coerce").to_numpy(float)
    new_pred = pred + lab.offset
    for f in (Field.LOWER_90, Field.UPPER_90):
        c = column(t, f)
        if c in out.columns:
            bound = pd.to_numeric(out[c], errors="coerce").to_numpy(float)
            out[c] = new_pred + (bound - pred) * lab.std_scale
    if column(t, Field.STD) in out.columns:
        out[column(t, Field.STD)] = pd.to_numeric(out[column(t, Field.STD)], errors="coerce") * lab.std_scale
    bounds = TARGETS[t].value_range
    cols = [column(t, f) for f in (Field.PREDICTION, Field.LOWER_90, Field.UPPER_90) if column(t, f) in out]
    out[pred_col] = new_pred
    if bounds is not None:
        for c in cols:
            out[c] = np.clip(out[c].to_numpy(float), *bounds)
    return out


def anchor_scores(
    scored: pd.DataFrame,
    predictors: Mapping[TargetName, PredictorLike],
    measured: Sequence[Measurement],
) -> pd.DataFrame:
    """A score table anchored to this lab: per target with measurements (and a predictor), the
    predictions shifted by ``lab_offset`` and std/intervals rescaled; other targets unchanged.
    ``out.attrs["lab_offsets"]``: ``{target: LabOffset.as_dict()}`` of every anchored target."""
    out = scored
    offsets: dict[str, dict[str, float | int | str]] = {}
    for target, predictor in predictors.items():
        name = TargetName(target)
        if (
            not any(m.target is name for m in measured)
            or column(name, Field.PREDICTION) not in scored.columns
        ):
            continue
        lab = lab_offset(predictor, measured, name)
        out = apply_offset(out, lab)
        offsets[name.value] = lab.as_dict()
    out = out.copy() if out is scored else out
    out.attrs["lab_offsets"] = offsets
    return out
