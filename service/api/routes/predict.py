"""POST /v1/predict: every item x every requested target, each answer or error on its own."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any

import numpy as np
import orjson
import pandas as pd
from fastapi import APIRouter, Body, HTTPException, Response, status

from featurize.composition import CompositionError, parse_formula
from models.conditions import NUMERIC_CONDITIONS
from models.predictor import predict_columns, predict_frame_raw
from models.relative import MEASURED_COLUMN, assess_anchors, has_relative_calibration, relative_values
from models.targets import TARGETS, TargetName
from service.api.deps import ComputeDep, PredictorsDep, SettingsDep
from service.api.schemas.common import ERROR_RESPONSES
from service.api.schemas.predict import (
    PREDICT_EXAMPLE,
    RELATIVE_EXAMPLE,
    PredictItem,
    PredictRequest,
    PredictResponse,
)

router = APIRouter(tags=["predict"])

_EXAMPLES: dict[str, Any] = {
    "electrolyte and cathode": {"summary": "Two items, two targets", "value": PREDICT_EXAMPLE},
    "relative to the host, anchored": {
        "summary": "Change vs the host with P(better), offset to your measured host",
        "value": RELATIVE_EXAMPLE,
    },
    "one bad item": {
        "summary": "A bad formula fails alone",
        "value": {
            "items": [{"formula": "Na3Zr2Si2PO12"}, {"formula": "Na2XyO3"}],
            "targets": ["ionic_conductivity"],
        },
    },
}


_NUMERIC_INPUTS = NUMERIC_CONDITIONS
#: Predicts of up to this many items (without a reference) take the compute fast lane
#: (``service.api.compute``): a few ms each, they no longer queue behind rankings and large batches.
FAST_LANE_MAX_ITEMS = 16


def items_frame(items: list[PredictItem]) -> pd.DataFrame:
    """The CLI-contract input frame (formula + conditions), one row per item, in order. Built from NumPy
    columns in one constructor call (no per-column casts): this is on the single-item latency path."""
    columns: dict[str, Any] = {
        "formula": np.array([item.formula for item in items], dtype=object),
        **{c: _float_column([getattr(item, c) for item in items]) for c in _NUMERIC_INPUTS},
        "working_ion": np.array([item.working_ion for item in items], dtype=object),
        "phase": np.array([item.phase for item in items], dtype=object),
    }
    return pd.DataFrame(columns, copy=False)


def _float_column(values: list[Any]) -> np.ndarray:
    """``np.array(values, dtype=float)`` (None -> NaN); a column left out of every item (most conditions
    of most requests) is made directly: converting 1,000 Nones cost ~0.2 ms per column."""
    if all(v is None for v in values):
        return np.full(len(values), np.nan)
    return np.array(values, dtype=float)


def _values(column: Any) -> list[Any]:
    """A column (Series, NumPy array or list) as a list of Python values."""
    return column if isinstance(column, list) else list(column.tolist())


def _num(value: object) -> float | None:
    if value is None:
        return None
    f = float(value)  # type: ignore[arg-type]
    return f if math.isfinite(f) else None  # JSON has no NaN/inf


def _numbers(column: Any) -> list[float | None]:
    """A numeric column as Python floats, None where not finite (JSON has no NaN/inf): ``_num`` of each
    value, for the whole column at once (the 1,000-item path called ``_num`` 4,000 times)."""
    values = np.asarray(column, dtype=float)
    out: list[float | None] = list(values.tolist())
    bad = ~np.isfinite(values)
    if bad.any():
        for i in np.flatnonzero(bad).tolist():
            out[i] = None
    return out


def _answers(target: TargetName, out: pd.DataFrame | Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per row, the ``TargetPrediction`` fields as a plain dict (the JSON the model would dump; building
    pydantic objects for every item of a 1,000-item batch cost more than the prediction itself). ``out``:
    the predictor's frame or its columns (``models.predictor.predict_columns``). Built column-wise (the
    numbers of a column converted at once, one dict literal per row): 1,000 rows 0.6 ms, was 1.0 ms."""
    unit = TARGETS[target].unit
    value, std, lower, upper = (_numbers(out[c]) for c in ("prediction", "std", "lower_90", "upper_90"))
    in_domain = [bool(v) for v in _values(out["in_domain"])]
    reasons = _values(out["domain_reason"])
    versions = _values(out["model_version"])
    errors = _values(out["error"])
    answers: list[dict[str, Any]] = []
    for i, err in enumerate(errors):
        if isinstance(err, str) and err:
            answers.append(
                {
                    "value": None,
                    "std": None,
                    "lower_90": None,
                    "upper_90": None,
                    "unit": unit,
                    "in_domain": None,
                    "domain_reason": "",
                    "model_version": str(versions[i] or ""),
                    "error": err,
                    "relative": None,
                }
            )
            continue
        answers.append(
            {
                "value": value[i],
                "std": std[i],
                "lower_90": lower[i],
                "upper_90": upper[i],
                "unit": unit,
                "in_domain": in_domain[i],
                "domain_reason": str(reasons[i] or ""),
                "model_version": str(versions[i]),
                "error": None,
                "relative": None,
            }
        )
    return answers


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses={**ERROR_RESPONSES, 503: {"description": "No model is loaded for a requested target"}},
    summary="Predict targets for a batch of materials",
)
async def predict(
    body: Annotated[PredictRequest, Body(openapi_examples=_EXAMPLES)],
    predictors: PredictorsDep,
    settings: SettingsDep,
    compute: ComputeDep,
) -> Response:
    """Each item gets, per target, a value with std, calibrated 90% interval, unit, applicability-domain
    flag with reason and model version, or an `error` for that item and target alone."""
    if len(body.items) > settings.max_items_per_request:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"{len(body.items)} items exceed the limit of {settings.max_items_per_request} per request: "
            "split the batch or submit a screening job",
        )
    absent = [t.value for t in body.targets if t not in predictors]
    if absent:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"no champion model is loaded for {', '.join(absent)}: train and register one, then restart",
        )

    if body.reference is not None:
        try:
            parse_formula(body.reference)
        except CompositionError as exc:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, f"reference {body.reference!r}: {exc}"
            ) from None

    def run() -> Response:
        frame = items_frame(body.items)
        # with a reference, the raw mean/spread come along so the relative columns need no second pass
        if body.reference is None:  # the columns straight from the predictor (no frame on this path)
            answers = {t: _answers(t, predict_columns(predictors[t], frame)) for t in body.targets}
            content = _response(body, answers)
        else:
            outputs = {t: predict_frame_raw(predictors[t], frame) for t in body.targets}
            answers = {t: _answers(t, out) for t, out in outputs.items()}
            content = _response(body, answers)
            content |= _relative(body, body.reference, predictors, frame, outputs, answers)
        return Response(orjson.dumps(content), media_type="application/json")

    # Computed on the server's compute thread, never on the event loop, so /health and the other
    # requests are served while it runs (NASCREEN_INLINE_MAX_ITEMS > 0 opts small requests back in).
    if len(body.items) <= settings.inline_max_items:
        with compute():
            return run()
    small = len(body.items) <= FAST_LANE_MAX_ITEMS and body.reference is None
    return await compute.run(run, fast=small)


def _response(body: PredictRequest, per_target: dict[TargetName, list[dict[str, Any]]]) -> dict[str, Any]:
    """The ``PredictResponse`` JSON (tests check it against the pydantic model's own dump)."""
    return {
        "results": [
            {
                "index": i,
                "id": item.id,
                "formula": item.formula,
                "predictions": {t.value: answers[i] for t, answers in per_target.items()},
            }
            for i, item in enumerate(body.items)
        ],
        "reference": None,
        "anchors": None,
    }


# ------------------------------------------------------------------------------- reference and anchors


def _relative_dicts(values: pd.DataFrame) -> list[dict[str, Any]]:
    """Per row, the ``RelativePrediction`` fields (see ``models.relative.relative_values``)."""
    cols = {c: values[c].tolist() for c in values.columns}
    out = []
    for i in range(len(values)):
        err = cols["error"][i]
        out.append(
            {
                "reference": str(cols["reference_formula"][i]),
                "reference_value": _num(cols["reference_prediction"][i]),
                "delta": _num(cols["delta"][i]),
                "delta_std": _num(cols["delta_std"][i]),
                "delta_lower_90": _num(cols["delta_lower_90"][i]),
                "delta_upper_90": _num(cols["delta_upper_90"][i]),
                "p_better": _num(cols["p_better"][i]),
                "anchored_value": _num(cols["anchored_prediction"][i]),
                "anchored_lower_90": _num(cols["anchored_lower_90"][i]),
                "anchored_upper_90": _num(cols["anchored_upper_90"][i]),
                "n_anchors": int(cols["n_anchors"][i]),
                "error": str(err) if err else None,
            }
        )
    return out


def _no_relative(reference: str, n: int, why: str) -> list[dict[str, Any]]:
    blank: dict[str, Any] = {
        "reference": reference,
        **dict.fromkeys(
            (
                "reference_value",
                "delta",
                "delta_std",
                "delta_lower_90",
                "delta_upper_90",
                "p_better",
                "anchored_value",
                "anchored_lower_90",
                "anchored_upper_90",
            )
        ),
        "n_anchors": 0,
        "error": why,
    }
    return [dict(blank) for _ in range(n)]


def _anchor_frames(body: PredictRequest) -> dict[TargetName, tuple[list[int], pd.DataFrame]]:
    """The anchors per measured target: (their indices in the request, formula + conditions + measured)."""
    out: dict[TargetName, tuple[list[int], pd.DataFrame]] = {}
    for target in body.targets:
        rows = [i for i, a in enumerate(body.anchors or []) if body.anchor_target(a) is target]
        if rows:
            anchors = [(body.anchors or [])[i] for i in rows]
            frame = items_frame(anchors)  # type: ignore[arg-type]  # an AnchorItem is a PredictItem
            frame[MEASURED_COLUMN] = [a.measured for a in anchors]
            out[target] = (rows, frame)
    return out


def _relative(
    body: PredictRequest,
    reference: str,
    predictors: Any,
    frame: pd.DataFrame,
    outputs: dict[TargetName, pd.DataFrame],
    answers: dict[TargetName, list[dict[str, Any]]],
) -> dict[str, Any]:
    """Each item's ``relative`` answer (added in place to ``answers``), the host rows (one per distinct
    conditions of the items: the 0 line) and the anchors report. A target whose model cannot answer
    relatively keeps its absolute answers and says why in ``relative.error``; a bad anchor row is
    reported with its reason and the other anchors still anchor."""
    protocols = frame.drop(columns=["formula"]).drop_duplicates().reset_index(drop=True)
    host = protocols.copy()
    host.insert(0, "formula", reference)
    host_answers: dict[TargetName, list[dict[str, Any]]] = {}
    anchor_report: list[dict[str, Any]] = []
    anchor_frames = _anchor_frames(body)
    for target in body.targets:
        predictor = predictors[target]
        host_out = predict_frame_raw(predictor, host)
        host_answers[target] = _answers(target, host_out)
        if not has_relative_calibration(predictor):
            why = (
                f"the {target.value} model has no relative calibration (trained before relative "
                f"predictions existed, or a target without them): retrain with `nascreen train --target "
                f"{target.value}`"
            )
            rel_items, rel_host = (
                _no_relative(reference, len(frame), why),
                _no_relative(reference, len(host), why),
            )
        else:
            offset = None
            if target in anchor_frames:
                indices, anchor_frame = anchor_frames[target]
                offset, rows = assess_anchors(predictor, anchor_frame)
                anchor_report += _anchor_dicts(target, indices, rows)
            rel_items = _relative_dicts(relative_values(predictor, frame, outputs[target], reference, offset))
            rel_host = _relative_dicts(relative_values(predictor, host, host_out, reference, offset))
        for answer, rel in zip(answers[target], rel_items, strict=True):
            answer["relative"] = rel
        for answer, rel in zip(host_answers[target], rel_host, strict=True):
            answer["relative"] = rel
    reference_rows = [
        {
            "formula": reference,
            "conditions": {k: v for k, v in record.items() if v is not None and not _is_nan(v)},
            "predictions": {t.value: host_answers[t][i] for t in body.targets},
        }
        for i, record in enumerate(protocols.to_dict(orient="records"))
    ]
    anchors = None if body.anchors is None else sorted(anchor_report, key=lambda r: int(r["index"]))
    return {"reference": reference_rows, "anchors": anchors}


def _is_nan(value: object) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def _anchor_dicts(target: TargetName, indices: list[int], rows: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {
            "index": index,
            "target": target.value,
            "formula": str(formula),
            "measured": float(measured),
            "prediction": _num(pred),
            "residual": _num(resid),
            "error": str(err) if err else None,
        }
        for index, formula, measured, pred, resid, err in zip(
            indices,
            rows["formula"],
            rows["measured"],
            rows["prediction"],
            rows["residual"],
            rows["error"],
            strict=True,
        )
    ]
