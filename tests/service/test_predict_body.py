"""POST /v1/predict reads its body itself (``service.api.predict_input``) and writes its answer column-wise
(``service.api.predict_output``). Checked against independent references:

- FastAPI itself: an app declaring ``PredictRequest`` as a body parameter (what the route did before)
  answers every body of a corpus (valid, schema errors, malformed JSON, content types, seeded mutations)
  with the same status and body as the route's own parsing, and the columns of an accepted body equal
  the validated model's fields;
- pydantic: the answer equals, byte for byte, orjson's rendering of the ``PredictResponse`` built from
  the in-process predictor's frame item by item (valid, mixed-bad, several targets, odd ids).
"""

from __future__ import annotations

import copy
import json
import math
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient
from starlette.exceptions import HTTPException as StarletteHTTPException

from models.conditions import NUMERIC_CONDITIONS
from models.predictor import PredictorLike
from models.targets import TARGETS, TargetName
from service.api.app import _http_error, _validation_error
from service.api.predict_input import TEXT_CONDITIONS, parse_predict_body
from service.api.predict_output import number_texts
from service.api.schemas.predict import (
    ItemResult,
    PredictRequest,
    PredictResponse,
    TargetPrediction,
)

JSON = "application/json"
GOOD = {
    "items": [
        {"formula": "Na3Zr2Si2PO12", "id": "x"},
        {
            "formula": "P2-Na0.67MnO2",
            "cycles": 100,
            "current_mA_g": 20,
            "voltage_low_V": 2.0,
            "voltage_high_V": 4.0,
            "working_ion": "Na",
            "phase": "crystalline",
        },
    ],
    "targets": ["ionic_conductivity", "capacity_retention"],
}
RAW_BODIES = [
    b"", b"{", b'{"items": [', b"null", b"1", b"[]", b"{}", b"NaN", b"\xff\xfe\x00", b"\xef\xbb\xbf{}",
    b'{"items": [{"formula": "NaCl", "cycles": NaN}], "targets": ["capacity_retention"]}',
    b'{"items": [{"formula": "NaCl", "cycles": Infinity}], "targets": ["capacity_retention"]}',
    b'{"items": [{"formula": "NaCl", "cycles": -Infinity}], "targets": ["capacity_retention"]}',
    b'{"items": [{"formula": "NaCl", "cycles": 1e999}], "targets": ["capacity_retention"]}',
    b'{"items": [{"formula": "NaCl", "cycles": "NaN"}], "targets": ["capacity_retention"]}',
    b'{"items": [{"formula": "NaCl", "cycles": 12}], "targets": ["capacity_retention"], "targets": []}',
    b'{"items": [{"formula": "NaCl", "formula": "NaMnO2"}], "targets": ["ionic_conductivity"]}',
    b'{"items": [{"formula": "Na\nCl"}], "targets": ["ionic_conductivity"]}',
    b'{"items": [{"formula": "NaCl"}], "targets": ["ionic_conductivity"]} x',
    b'{"items": [{"formula": "NaCl"}], "targets": ["ionic_conductivity"],}',
    b'{"items": [{"formula": "NaCl", "cycles": 01}], "targets": ["capacity_retention"]}',
    b'{"items": [{"formula": "NaCl", "cycles": 123456789012345678901234567890}], "targets": ["x"]}',
    b'{"items": [{"formula": "NaCl", "voltage_low_V": 4, "voltage_high_V": 4}], "targets": ["x"]}',
    b'{"items": [{"formula": "NaCl"}], "targets": ["ionic_conductivity"], "reference": ""}',
    b'{"items": [{"formula": "NaCl"}], "targets": ["ionic_conductivity"], "anchors": []}',
    '{"items": [{"formula": "NaCl"}], "targets": ["ionic_conductivity"]}'.encode("utf-16"),
]  # fmt: skip
CONTENT_TYPES = [
    None,
    "text/plain",
    "application/json; charset=utf-8",
    "application/vnd.x+json",
    "multipart/form-data",
]
VALUES: list[Any] = [
    None, True, 0, -1, 1, 3.5, 1e6, 1e7, 2**70, "", "x", "Na", "12", "1e3", "inf", [], {}, [1], {"a": 1},
    "ionic_conductivity", 0.0, -0.0, 1e-300, 10, 10.0000001, "K", "crystalline", "a" * 201,
]  # fmt: skip


def _mutations(n: int, seed: int = 7) -> list[bytes]:
    """``GOOD`` with one place replaced, deleted, or a key added (seeded)."""

    def paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
        yield prefix
        children = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
        for key, value in children:
            yield from paths(value, (*prefix, key))

    rng = random.Random(seed)
    places = list(paths(GOOD))[1:]
    out = []
    for _ in range(n):
        doc = copy.deepcopy(GOOD)
        place = rng.choice(places)
        node = doc
        for key in place[:-1]:
            node = node[key]
        action = rng.random()
        if action < 0.6:
            node[place[-1]] = rng.choice(VALUES)
        elif action < 0.8:
            del node[place[-1]]
        else:
            into = node if isinstance(node, dict) else doc
            into[rng.choice(["extra", "cycles", "id", "reference", "anchors", "voltage_low_V"])] = rng.choice(
                VALUES
            )
        out.append(json.dumps(doc).encode())
    return out


CORPUS = [(json.dumps(GOOD).encode(), JSON)] + [(b, JSON) for b in RAW_BODIES + _mutations(300)]
CORPUS += [(json.dumps(GOOD).encode(), ct) for ct in CONTENT_TYPES]


def _with_handlers(app: FastAPI) -> FastAPI:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    return app


@pytest.fixture(scope="module")
def both() -> tuple[TestClient, TestClient]:
    """FastAPI validating a declared ``PredictRequest`` body, and the route's own parsing."""
    declared, own = _with_handlers(FastAPI()), _with_handlers(FastAPI())

    @declared.post("/p")
    async def by_fastapi(body: PredictRequest) -> dict[str, Any]:
        return {"n": len(body.items)}

    @own.post("/p")
    async def by_route(request: Request) -> dict[str, Any]:
        body = parse_predict_body(await request.body(), request.headers.get("content-type"))
        return {"n": len(body)}

    return TestClient(declared), TestClient(own)


def test_the_corpus_is_answered_as_fastapi_answered_it(both: tuple[TestClient, TestClient]) -> None:
    declared, own = both
    statuses = set()
    for raw, content_type in CORPUS:
        headers = {} if content_type is None else {"content-type": content_type}
        want = declared.post("/p", content=raw, headers=headers)
        got = own.post("/p", content=raw, headers=headers)
        assert (got.status_code, got.json()) == (want.status_code, want.json()), (raw, content_type)
        statuses.add(want.status_code)
    assert statuses == {200, 400, 422}  # the corpus reaches every outcome


def _model_columns(body: PredictRequest) -> dict[str, list[Any]]:
    names = ("formula", "id", *NUMERIC_CONDITIONS, *TEXT_CONDITIONS)
    return {name: [getattr(item, name) for item in body.items] for name in names}


def test_an_accepted_body_gives_the_models_values() -> None:
    accepted = 0
    for raw, content_type in CORPUS:
        try:
            model = PredictRequest.model_validate(json.loads(raw))
        except (ValueError, UnicodeDecodeError):
            continue
        if content_type != JSON:
            continue
        got = parse_predict_body(raw, content_type)
        want = _model_columns(model)
        assert got.ids == want["id"] and got.columns["formula"].tolist() == want["formula"]
        for name in NUMERIC_CONDITIONS:
            column = got.columns[name]
            expected = np.array([np.nan if v is None else v for v in want[name]], dtype=float)
            assert column.dtype == np.float64 and np.array_equal(column, expected, equal_nan=True), name
        for name in TEXT_CONDITIONS:
            assert got.columns[name].tolist() == want[name], name
        assert got.targets == model.targets and got.reference == model.reference
        accepted += 1
    assert accepted >= 50


# --------------------------------------------------------------------------------------------- answers
def _expected(predictors: dict[TargetName, PredictorLike], body: dict[str, Any]) -> dict[str, Any]:
    """The ``PredictResponse`` built item by item with pydantic from the in-process predictor's frame."""
    frame = pd.DataFrame([{k: v for k, v in item.items() if k != "id"} for item in body["items"]])
    outs = {TargetName(t): predictors[TargetName(t)].predict_frame(frame) for t in body["targets"]}

    def finite(v: object) -> float | None:
        return float(v) if math.isfinite(float(v)) else None  # type: ignore[arg-type]

    results = []
    for i, item in enumerate(body["items"]):
        predictions = {}
        for target, out in outs.items():
            row = out.iloc[i]
            unit = TARGETS[target].unit
            if row["error"]:
                predictions[target] = TargetPrediction(
                    value=None, unit=unit, model_version=str(row["model_version"]), error=row["error"]
                )
                continue
            predictions[target] = TargetPrediction(
                value=finite(row["prediction"]),
                std=finite(row["std"]),
                lower_90=finite(row["lower_90"]),
                upper_90=finite(row["upper_90"]),
                unit=unit,
                in_domain=bool(row["in_domain"]),
                domain_reason=str(row["domain_reason"]),
                model_version=str(row["model_version"]),
            )
        results.append(
            ItemResult(index=i, id=item.get("id"), formula=item["formula"], predictions=predictions)
        )
    return PredictResponse(results=results).model_dump(mode="json")


CATHODE = {"cycles": 100, "current_mA_g": 20, "voltage_low_V": 2.0, "voltage_high_V": 4.0}
FORMULAS = ("Na3Zr2Si2PO12", "NaMnO2", "Na3PS4")
ANSWER_CASES = {
    "one item": {"items": [{"formula": "Na3Zr2Si2PO12"}], "targets": ["ionic_conductivity"]},
    "mixed bad, two targets": {
        "items": [
            {"formula": "Na3Zr2Si2PO12", "id": "a"},
            {"formula": "Na2XyO3", "id": "bad"},
            {"formula": "P2-Na0.67MnO2", **CATHODE},
            {"formula": "NaTaCl6", "phase": "molten"},
            {"formula": "NaTaCl6", "phase": "Amorphous", "id": '\U0001f50b "q" \\ </script> é'},
            {"formula": "Na2OsO3", "cycles": 5},
        ],
        "targets": ["capacity_retention", "ionic_conductivity"],
    },
    "repeated": {
        "items": [{"formula": f, "cycles": c} for f in FORMULAS for c in (10, 200)] * 20,
        "targets": ["ionic_conductivity", "capacity_retention"],
    },
}  # fmt: skip


@pytest.mark.parametrize("case", ANSWER_CASES, ids=list(ANSWER_CASES))
def test_the_answer_is_the_pydantic_response_byte_for_byte(
    fitted_client: TestClient, fitted_predictors: dict[TargetName, PredictorLike], case: str
) -> None:
    body = ANSWER_CASES[case]
    r = fitted_client.post("/v1/predict", json=body)
    assert r.status_code == 200, r.text
    expected = _expected(fitted_predictors, body)
    assert r.json() == expected
    assert r.content == orjson.dumps(expected)


def test_number_texts_follow_the_per_value_rule() -> None:
    """A number's JSON is orjson's text of the Python float, null for NaN, inf and None (-0.0 kept)."""
    column = [
        1.5,
        float("nan"),
        float("inf"),
        -float("inf"),
        -0.0,
        0.0,
        2,
        None,
        np.float64(3.25),
        1e-310,
        1e16,
    ]
    want = [orjson.dumps(float(v) if v is not None and math.isfinite(v) else None) for v in column]
    assert number_texts(column) == want
    assert number_texts(np.asarray([1.0, 2.0]), np.array([False, True])) == [b"1.0", b"null"]
    assert number_texts([]) == []
