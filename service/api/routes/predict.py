"""POST /v1/predict: every item x every requested target, each answer or error on its own."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson
import pandas as pd
from fastapi import APIRouter, HTTPException, Request, Response, status

from featurize.composition import CompositionError, parse_formula
from models.predictor import predict_columns, predict_frame_raw
from models.relative import MEASURED_COLUMN, assess_anchors, has_relative_calibration, relative_values
from models.targets import TargetName
from service.api.deps import request_state
from service.api.predict_input import PredictInput, item_columns, parse_predict_body
from service.api.predict_output import (
    Part,
    answer_parts,
    joined_rows,
    predict_response,
    predictions_parts,
    results_parts,
    row_texts,
)
from service.api.request_route import RequestRoute
from service.api.schemas.common import ERROR_RESPONSES
from service.api.schemas.predict import PREDICT_EXAMPLE, RELATIVE_EXAMPLE, PredictRequest, PredictResponse

# The route reads its body and writes its JSON itself: no per-request dependency solving either
# (``service.api.request_route``).
router = APIRouter(tags=["predict"], route_class=RequestRoute)

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


#: Predicts of up to this many items (without a reference) take the compute fast lane
#: (``service.api.compute``): a few ms each, they no longer queue behind rankings and large batches.
FAST_LANE_MAX_ITEMS = 16

# The body is read and validated by the route itself (``service.api.predict_input``: parsed once from the
# raw bytes, column-wise), not by FastAPI; the OpenAPI document still names the request model and shows the
# examples (``service.api.app`` adds the models in ``BODY_MODELS`` to its components).
BODY_MODELS = (PredictRequest,)
_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/PredictRequest"},
                "examples": _EXAMPLES,
            }
        },
    }
}


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses={**ERROR_RESPONSES, 503: {"description": "No model is loaded for a requested target"}},
    summary="Predict targets for a batch of materials",
    openapi_extra=_BODY_DOC,
)
async def predict(request: Request) -> Response:
    """Each item gets, per target, a value with std, calibrated 90% interval, unit, applicability-domain
    flag with reason and model version, or an `error` for that item and target alone."""
    state = await request_state(request)  # 503 while the server is starting, as the dependency answers
    predictors, settings, compute = state.predictors, state.settings, state.compute
    body = parse_predict_body(await request.body(), request.headers.get("content-type"))
    if len(body) > settings.max_items_per_request:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"{len(body)} items exceed the limit of {settings.max_items_per_request} per request: "
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
        return Response(_answer(body, predictors), media_type="application/json")

    # Computed on the server's compute thread, never on the event loop, so /health and the other
    # requests are served while it runs (NASCREEN_INLINE_MAX_ITEMS > 0 opts small requests back in).
    if len(body) <= settings.inline_max_items:
        with compute():
            return run()
    small = len(body) <= FAST_LANE_MAX_ITEMS and body.reference is None
    return await compute.run(run, fast=small)


def _answer(body: PredictInput, predictors: Mapping[TargetName, Any]) -> bytes:
    """The ``PredictResponse`` JSON of ``body`` (``service.api.predict_output``: written column-wise)."""
    frame = body.frame()
    if body.reference is None:  # the columns straight from the predictor (no frame on this path)
        answers = {t: answer_parts(t, predict_columns(predictors[t], frame)) for t in body.targets}
        reference = anchors = None
    else:  # the raw mean/spread come along so the relative columns need no second pass
        outputs = {t: predict_frame_raw(predictors[t], frame) for t in body.targets}
        relative, reference, anchors = _relative(body, body.reference, predictors, frame, outputs)
        answers = {t: answer_parts(t, outputs[t], relative[t]) for t in body.targets}
    rows = results_parts(body.ids, body.columns["formula"].tolist(), predictions_parts(answers))
    return predict_response(joined_rows(len(body), rows), reference, anchors)


# ------------------------------------------------------------------------------- reference and anchors


def _num(value: object) -> float | None:
    if value is None:
        return None
    f = float(value)  # type: ignore[arg-type]
    return f if math.isfinite(f) else None  # JSON has no NaN/inf


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


def _anchor_frames(body: PredictInput) -> dict[TargetName, tuple[list[int], pd.DataFrame]]:
    """The anchors per measured target: (their indices in the request, formula + conditions + measured)."""
    out: dict[TargetName, tuple[list[int], pd.DataFrame]] = {}
    for target in body.targets:
        rows = [i for i, t in enumerate(body.anchor_targets) if t is target]
        if rows:
            anchors = [(body.anchors or [])[i] for i in rows]
            frame = pd.DataFrame(item_columns([vars(a) for a in anchors]), copy=False)
            frame[MEASURED_COLUMN] = [a.measured for a in anchors]
            out[target] = (rows, frame)
    return out


def _relative_texts(values: list[dict[str, Any]]) -> list[bytes]:
    return [orjson.dumps(v) for v in values]


def _relative(
    body: PredictInput,
    reference: str,
    predictors: Any,
    frame: pd.DataFrame,
    outputs: dict[TargetName, pd.DataFrame],
) -> tuple[dict[TargetName, list[bytes]], list[dict[str, Any]], list[dict[str, Any]] | None]:
    """Each item's ``relative`` answer per target (its JSON), the host rows (one per distinct conditions
    of the items: the 0 line) and the anchors report. A target whose model cannot answer relatively keeps
    its absolute answers and says why in ``relative.error``; a bad anchor row is reported with its reason
    and the other anchors still anchor."""
    protocols = frame.drop(columns=["formula"]).drop_duplicates().reset_index(drop=True)
    host = protocols.copy()
    host.insert(0, "formula", reference)
    host_answers: dict[TargetName, list[Part]] = {}
    relative: dict[TargetName, list[bytes]] = {}
    anchor_report: list[dict[str, Any]] = []
    anchor_frames = _anchor_frames(body)
    for target in body.targets:
        predictor = predictors[target]
        host_out = predict_frame_raw(predictor, host)
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
        relative[target] = _relative_texts(rel_items)
        host_answers[target] = answer_parts(target, host_out, _relative_texts(rel_host))
    host_predictions = row_texts(len(host), predictions_parts(host_answers))
    reference_rows = [
        {
            "formula": reference,
            "conditions": {k: v for k, v in record.items() if v is not None and not _is_nan(v)},
            "predictions": orjson.Fragment(host_predictions[i]),
        }
        for i, record in enumerate(protocols.to_dict(orient="records"))
    ]
    anchors = None if body.anchors is None else sorted(anchor_report, key=lambda r: int(r["index"]))
    return relative, reference_rows, anchors


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
