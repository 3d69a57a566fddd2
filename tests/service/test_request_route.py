"""``POST /v1/predict`` as a ``RequestRoute`` (no FastAPI dependency solving): the state the lifespan
sets is used, the answers are the predictor's own (exactly, bad rows included), and the errors, request
ids and OpenAPI document are those of any other route."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest
from fastapi import Request
from fastapi.testclient import TestClient

from models.predictor import PredictorLike
from models.targets import TargetName
from service.api.app import create_app
from service.api.request_route import RequestRoute
from service.api.settings import ApiSettings
from service.api.state import build_state

Fitted = dict[TargetName, PredictorLike]

ITEMS = [
    {"formula": "Na3Zr2Si2PO12"},
    {"formula": "Na2XyO3"},  # unknown element: an error for this item alone
    {"formula": "Na3PS4", "phase": "glass"},
    {"formula": "Na-1ZrO3"},  # negative amount
    {"formula": "Na3PS4", "phase": "plasma"},  # unknown phase
    {"formula": "Na2ZrCl6"},
]
COMPARED = (("value", "prediction"), ("std", "std"), ("lower_90", "lower_90"), ("upper_90", "upper_90"))


@pytest.fixture
def lifespan_state_client(fitted_settings: ApiSettings, fitted_predictors: Fitted) -> Iterator[TestClient]:
    """The app with its state where the lifespan puts it (``app.state.nascreen``), no override."""
    app = create_app(fitted_settings)
    state = build_state(fitted_settings, predictors=fitted_predictors)
    app.state.nascreen = state
    try:
        yield TestClient(app)
    finally:
        state.close()


def _num(value: float) -> float | None:
    return None if pd.isna(value) else float(value)


def test_answers_are_the_predictors_own_bad_rows_included(
    lifespan_state_client: TestClient, fitted_predictors: Fitted
) -> None:
    r = lifespan_state_client.post(
        "/v1/predict",
        json={"items": ITEMS, "targets": ["ionic_conductivity"]},
        headers={"X-Request-ID": "r-1"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-request-id"] == "r-1"
    assert r.headers["content-type"] == "application/json"
    got = [x["predictions"]["ionic_conductivity"] for x in r.json()["results"]]
    frame = pd.DataFrame({"formula": [i["formula"] for i in ITEMS], "phase": [i.get("phase") for i in ITEMS]})
    want = fitted_predictors[TargetName.IONIC_CONDUCTIVITY].predict_frame(frame)
    for answer, (_, row) in zip(got, want.iterrows(), strict=True):
        for key, column in COMPARED:
            assert answer[key] == _num(row[column]), (key, answer, row)  # exactly: same floats
        assert (answer["error"] or "") == (row["error"] or "")
        if not row["error"]:  # an item that failed has no domain answer (null)
            assert answer["in_domain"] == bool(row["in_domain"])
            assert answer["domain_reason"] == row["domain_reason"]
    assert [a["error"] is None for a in got] == [True, False, True, False, False, True]


def test_one_item_answer_is_the_same_bytes_as_through_the_dependency_override(
    lifespan_state_client: TestClient, fitted_client: TestClient
) -> None:
    body = {"items": [{"formula": "Na3Zr2Si2PO12"}], "targets": ["ionic_conductivity", "capacity_retention"]}
    a = lifespan_state_client.post("/v1/predict", json=body)
    b = fitted_client.post("/v1/predict", json=body)
    assert a.status_code == b.status_code == 200
    assert a.content == b.content


def test_bad_input_is_422_naming_the_field(lifespan_state_client: TestClient) -> None:
    r = lifespan_state_client.post(
        "/v1/predict",
        json={"items": [{"formula": "NaMnO2", "cycles": -1}], "targets": ["capacity_retention"]},
    )
    assert r.status_code == 422
    assert r.headers["x-request-id"]
    [problem] = r.json()["detail"]
    assert problem["loc"][:4] == ["body", "items", 0, "cycles"] and problem["input"] == -1


def test_before_start_up_predict_answers_503_as_the_dependency_does(
    make_settings: object, empty_tracking_uri: str
) -> None:
    app = create_app(ApiSettings(project_root="/nonexistent-root", tracking_uri=empty_tracking_uri))
    client = TestClient(app)  # lifespan not run: no state yet
    predict = client.post(
        "/v1/predict", json={"items": [{"formula": "NaCl"}], "targets": ["ionic_conductivity"]}
    )
    health = client.get("/health")
    assert predict.status_code == health.status_code == 503
    assert predict.json() == health.json() == {"detail": "the server is still starting"}


def test_a_request_route_endpoint_takes_the_request_only() -> None:
    async def with_params(request: Request, n: int) -> None:
        return None

    with pytest.raises(TypeError, match="takes the request only"):
        RequestRoute("/x", with_params, methods=["POST"])

    async def answers_a_dict(request: Request) -> dict[str, int]:
        return {"a": 1}

    app = create_app(ApiSettings(project_root="/nonexistent-root"))
    app.router.routes.append(RequestRoute("/x", answers_a_dict, methods=["POST"]))
    r = TestClient(app, raise_server_exceptions=False).post("/x")
    assert r.status_code == 500 and "request id" in r.json()["detail"]
