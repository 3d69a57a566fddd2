"""The body of ``POST /v1/predict`` parsed once, in Rust, into the predictor's input columns.

FastAPI, given the body as a ``PredictRequest`` parameter, parsed the JSON with ``json.loads``, validated
the dicts into one pydantic model per item (running ``BatteryConditions``' Python validators item by item)
and the route then read the models back attribute by attribute into columns: for a 1,000-item body that
was ~3 ms before any prediction. Here (``parse_predict_body``):

1. the raw bytes are validated by ``PREDICT_REQUEST_SHAPE`` (the request's fields, types, bounds on lengths
   and ``extra="forbid"``, but no Python validators) straight from JSON into plain dicts;
2. what the Python validators check is checked column-wise here (each condition finite, > 0 and at most
   its maximum; a voltage window low below high; targets not repeated);
3. the columns are built from the dicts.

Any body that fails (1) or (2), or that has anchors, is validated the way FastAPI did it
(``validated_like_fastapi``: the same ``PredictRequest`` model, the same JSON parser, the same error
records), so every 4xx keeps its status, locations and messages; only accepted bodies take the quick way,
and they give the same values as the model (``tests/service/test_predict_body.py`` checks both).
"""

from __future__ import annotations

import email.message
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from fastapi import HTTPException, status
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError

from models.conditions import NUMERIC_CONDITIONS, condition_field
from models.targets import TargetName
from service.api.schemas.predict import PREDICT_REQUEST_SHAPE, AnchorItem, PredictRequest

#: The predictor's input columns (the CLI contract) in the order the frame has them: the reference rows
#: list each distinct conditions in this order.
TEXT_CONDITIONS = ("working_ion", "phase")
_MAXIMA = {name: condition_field(name).maximum for name in NUMERIC_CONDITIONS}
_REQUEST = TypeAdapter(PredictRequest)


@dataclass(frozen=True)
class PredictInput:
    """A validated predict request, column-wise: what the route computes from."""

    targets: list[TargetName]
    #: formula, the numeric conditions (float, NaN = not given), working_ion and phase: one value per item
    columns: dict[str, Any]
    ids: list[str | None]
    reference: str | None = None
    anchors: list[AnchorItem] | None = None
    #: per anchor, the target it was measured for
    anchor_targets: list[TargetName] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def frame(self) -> pd.DataFrame:
        """The CLI-contract input frame (formula + conditions), one row per item, in order."""
        return pd.DataFrame(self.columns, copy=False)


def item_columns(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The input columns of ``rows`` (validated items as field -> value; an absent field is None)."""
    return _columns(rows, _numbers(rows))


def _numbers(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any] | None]:
    """Each numeric condition's values (None: absent), or None for a condition no row has (most of them
    in most requests: no list to make)."""
    given = set().union(*rows) if rows else set()
    return {name: [row.get(name) for row in rows] if name in given else None for name in NUMERIC_CONDITIONS}


def _columns(rows: Sequence[Mapping[str, Any]], numbers: Mapping[str, list[Any] | None]) -> dict[str, Any]:
    n = len(rows)
    texts = {
        name: np.array([row.get(name) for row in rows], dtype=object)
        if any(name in row for row in rows)
        else np.full(n, None, dtype=object)
        for name in TEXT_CONDITIONS
    }
    return {
        "formula": np.array([row["formula"] for row in rows], dtype=object),
        **{name: _float_column(numbers[name], n) for name in NUMERIC_CONDITIONS},
        **texts,
    }


def _float_column(values: list[Any] | None, n: int) -> np.ndarray:
    """``np.array(values, dtype=float)`` (None -> NaN); a column left out of every item (``values`` None or
    all None) is made directly: converting 1,000 Nones cost ~0.2 ms per column."""
    if values is None or values.count(None) == n:
        return np.full(n, np.nan)
    return np.array(values, dtype=float)


def parse_predict_body(raw: bytes, content_type: str | None) -> PredictInput:
    """The request in ``raw`` (see the module docstring); a bad body raises what FastAPI raised for it
    (``RequestValidationError``: 422 naming each place; ``HTTPException`` 400 for undecodable bytes)."""
    if raw and is_json_content(content_type):
        try:
            shape = PREDICT_REQUEST_SHAPE.validate_json(raw)
        except ValidationError:
            shape = None
        parsed = None if shape is None else _from_shape(shape)
        if parsed is not None:
            return parsed
    return _from_request(validated_like_fastapi(raw, content_type))


def _from_shape(shape: dict[str, Any]) -> PredictInput | None:
    """The input of a body that passed ``PREDICT_REQUEST_SHAPE``, or None when it fails a check the
    model's Python validators make (then the model says which and where)."""
    targets: list[TargetName] = shape["targets"]
    if len(set(targets)) != len(targets):
        return None
    items: list[dict[str, Any]] = shape["items"]
    numbers = _numbers(items)
    columns = _columns(items, numbers)
    if not _conditions_pass(numbers, columns):
        return None
    ids = [item.get("id") for item in items]
    return PredictInput(targets=targets, columns=columns, ids=ids, reference=shape.get("reference"))


def _conditions_pass(numbers: Mapping[str, list[Any] | None], columns: Mapping[str, np.ndarray]) -> bool:
    """``BatteryConditions``' checks, column-wise: every given condition finite, > 0 and at most its
    maximum (``models.conditions.check_condition``), and the voltage window low below high
    (``check_window``). A NaN that was sent (not an absent value) fails."""
    for name, sent in numbers.items():
        if sent is None:
            continue
        values = columns[name]
        given = ~np.isnan(values)
        if int(given.sum()) != len(values) - sent.count(None):
            return False  # a NaN was sent
        kept = values[given]
        if not ((kept > 0) & (kept <= _MAXIMA[name])).all():
            return False
    if numbers["voltage_low_V"] is None or numbers["voltage_high_V"] is None:
        return True
    # NaN (a side not given) compares False: only windows with both ends are checked
    return not (columns["voltage_low_V"] >= columns["voltage_high_V"]).any()


def _from_request(body: PredictRequest) -> PredictInput:
    return PredictInput(
        targets=list(body.targets),
        columns=item_columns([vars(item) for item in body.items]),
        ids=[item.id for item in body.items],
        reference=body.reference,
        anchors=body.anchors,
        anchor_targets=[body.anchor_target(anchor) for anchor in body.anchors or []],
    )


def is_json_content(content_type: str | None) -> bool:
    """Whether FastAPI parses a body with this Content-Type as JSON (with its default strict content
    type, a body without one is not parsed and fails validation as bytes)."""
    if content_type is None:
        return False
    if content_type == "application/json":
        return True
    message = email.message.Message()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


def validated_like_fastapi(raw: bytes, content_type: str | None) -> PredictRequest:
    """``raw`` validated as FastAPI (0.165, ``fastapi.routing.get_request_handler`` and
    ``fastapi.dependencies.utils.request_body_to_args``) validates a declared ``PredictRequest`` body
    parameter: the same model, parser and error records, so the same 4xx answers."""
    value: Any = raw
    if not raw:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
        )
    if is_json_content(content_type):
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            error = {
                "type": "json_invalid",
                "loc": ("body", exc.pos),
                "msg": "JSON decode error",
                "input": {},
                "ctx": {"error": exc.msg},
            }
            raise RequestValidationError([error], body=exc.doc) from exc
        except Exception as exc:  # bytes that are no text (FastAPI answers the same)
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "There was an error parsing the body") from exc
    try:
        return _REQUEST.validate_python(value, from_attributes=True)
    except ValidationError as exc:
        errors = [{**err, "loc": ("body", *err["loc"])} for err in exc.errors(include_url=False)]
        raise RequestValidationError(errors, body=value) from None
