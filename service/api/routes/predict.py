"""POST /v1/predict: every item x every requested target, each answer or error on its own."""

from __future__ import annotations

import math
from typing import Annotated, Any

import numpy as np
import orjson
import pandas as pd
from fastapi import APIRouter, Body, HTTPException, Response, status

from models.conditions import NUMERIC_CONDITIONS
from models.targets import TARGETS, TargetName
from service.api.deps import ComputeDep, PredictorsDep, SettingsDep
from service.api.schemas.common import ERROR_RESPONSES
from service.api.schemas.predict import (
    PREDICT_EXAMPLE,
    PredictItem,
    PredictRequest,
    PredictResponse,
)

router = APIRouter(tags=["predict"])

_EXAMPLES: dict[str, Any] = {
    "electrolyte and cathode": {"summary": "Two items, two targets", "value": PREDICT_EXAMPLE},
    "one bad item": {
        "summary": "A bad formula fails alone",
        "value": {
            "items": [{"formula": "Na3Zr2Si2PO12"}, {"formula": "Na2XyO3"}],
            "targets": ["ionic_conductivity"],
        },
    },
}


_NUMERIC_INPUTS = NUMERIC_CONDITIONS


def items_frame(items: list[PredictItem]) -> pd.DataFrame:
    """The CLI-contract input frame (formula + conditions), one row per item, in order. Built from NumPy
    columns in one constructor call (no per-column casts): this is on the single-item latency path."""
    columns: dict[str, Any] = {
        "formula": np.array([item.formula for item in items], dtype=object),
        **{c: np.array([getattr(item, c) for item in items], dtype=float) for c in _NUMERIC_INPUTS},
        "working_ion": np.array([item.working_ion for item in items], dtype=object),
        "phase": np.array([item.phase for item in items], dtype=object),
    }
    return pd.DataFrame(columns, copy=False)


def _num(value: object) -> float | None:
    if value is None:
        return None
    f = float(value)  # type: ignore[arg-type]
    return f if math.isfinite(f) else None  # JSON has no NaN/inf


def _answers(target: TargetName, out: pd.DataFrame) -> list[dict[str, Any]]:
    """Per row, the ``TargetPrediction`` fields as a plain dict (the JSON the model would dump; building
    pydantic objects for every item of a 1,000-item batch cost more than the prediction itself)."""
    unit = TARGETS[target].unit
    cols = {c: out[c].tolist() for c in ("prediction", "std", "lower_90", "upper_90", "in_domain")}
    reasons = out["domain_reason"].tolist()
    versions = out["model_version"].tolist()
    errors = out["error"].tolist()
    answers: list[dict[str, Any]] = []
    for i in range(len(out)):
        err = errors[i]
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
                }
            )
            continue
        answers.append(
            {
                "value": _num(cols["prediction"][i]),
                "std": _num(cols["std"][i]),
                "lower_90": _num(cols["lower_90"][i]),
                "upper_90": _num(cols["upper_90"][i]),
                "unit": unit,
                "in_domain": bool(cols["in_domain"][i]),
                "domain_reason": str(reasons[i] or ""),
                "model_version": str(versions[i]),
                "error": None,
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

    def run() -> Response:
        frame = items_frame(body.items)
        outputs = {t: predictors[t].predict_frame(frame) for t in body.targets}
        return Response(
            orjson.dumps(_response(body, {t: _answers(t, out) for t, out in outputs.items()})),
            media_type="application/json",
        )

    # Computed on the server's compute thread, never on the event loop, so /health and the other
    # requests are served while it runs (NASCREEN_INLINE_MAX_ITEMS > 0 opts small requests back in).
    if len(body.items) <= settings.inline_max_items:
        with compute():
            return run()
    return await compute.run(run)


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
        ]
    }
