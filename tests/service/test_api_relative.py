"""POST /v1/predict with a reference (the host) and anchors (the user's measured rows), and
/v1/rank-dopants ranked by the change vs the host: against real trained champion models (issue 8)."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from models.predictor import load_predictors
from models.relative import predict_relative
from models.targets import TargetName
from service.api.schemas.predict import RELATIVE_EXAMPLE, PredictResponse
from service.api.settings import ApiSettings

pytestmark = [pytest.mark.slow, pytest.mark.mlflow]

HOST = "Na0.6Li0.2Mn0.8O2"
RU = "Na0.6Li0.2Mn0.7Ru0.1O2"
TI = "Na0.6Li0.2Mn0.7Ti0.1O2"
PROTOCOL = {"cycles": 200, "current_mA_g": 170, "voltage_low_V": 2.0, "voltage_high_V": 4.5}


def _predictor(settings: ApiSettings) -> object:
    return load_predictors([TargetName.CAPACITY_RETENTION], settings.resolved_tracking_uri)[
        TargetName.CAPACITY_RETENTION
    ]


def test_the_documented_relative_example_matches_the_in_process_answer(
    client: TestClient, served_settings: ApiSettings
) -> None:
    r = client.post("/v1/predict", json=RELATIVE_EXAMPLE)
    assert r.status_code == 200, r.text
    body = r.json()
    assert PredictResponse.model_validate(body).model_dump(mode="json") == body
    items = pd.DataFrame([{k: v for k, v in i.items()} for i in RELATIVE_EXAMPLE["items"]])
    anchors = pd.DataFrame(RELATIVE_EXAMPLE["anchors"])
    want = predict_relative(_predictor(served_settings), items, HOST, anchors=anchors)
    for result, (_, row) in zip(body["results"], want.iterrows(), strict=True):
        rel = result["predictions"]["capacity_retention"]["relative"]
        assert rel["error"] is None
        assert rel["reference"] == HOST
        assert rel["delta"] == pytest.approx(row["delta"])
        assert rel["delta_lower_90"] < rel["delta"] < rel["delta_upper_90"]
        assert rel["p_better"] == pytest.approx(row["p_better"])
        assert rel["anchored_value"] == pytest.approx(row["anchored_prediction"])
        assert rel["n_anchors"] == 1
    # the host's own row is the 0 line (one per distinct conditions of the items: here one)
    (host,) = body["reference"]
    assert host["formula"] == HOST and host["conditions"]["cycles"] == 200
    host_rel = host["predictions"]["capacity_retention"]["relative"]
    assert host_rel["delta"] == pytest.approx(0.0, abs=1e-9)
    assert host_rel["p_better"] == pytest.approx(0.5)
    (anchor,) = body["anchors"]
    assert anchor["error"] is None and anchor["residual"] == pytest.approx(45.5 - anchor["prediction"])


def test_without_a_reference_nothing_relative_is_added(client: TestClient) -> None:
    r = client.post(
        "/v1/predict", json={"items": [{"formula": RU, **PROTOCOL}], "targets": ["capacity_retention"]}
    )
    body = r.json()
    assert body["reference"] is None and body["anchors"] is None
    assert body["results"][0]["predictions"]["capacity_retention"]["relative"] is None


def test_a_bad_anchor_row_is_reported_and_the_others_anchor(client: TestClient) -> None:
    anchors = [
        {"formula": HOST, **PROTOCOL, "measured": 45.5},
        {"formula": "Na0.6Xy0.2MnO2", **PROTOCOL, "measured": 60.0},
        {"formula": RU},  # no cycles: retention cannot be predicted, so it cannot anchor
    ]
    anchors[2]["measured"] = 81.2
    body = {
        "items": [{"formula": RU, **PROTOCOL}, {"formula": TI, **PROTOCOL}],
        "targets": ["capacity_retention"],
        "reference": HOST,
        "anchors": anchors,
    }
    r = client.post("/v1/predict", json=body)
    assert r.status_code == 200, r.text
    report = r.json()["anchors"]
    assert [a["index"] for a in report] == [0, 1, 2]
    assert report[0]["error"] is None
    assert "Xy" in report[1]["error"] and report[1]["prediction"] is None
    assert "cycles" in report[2]["error"]
    rel = r.json()["results"][0]["predictions"]["capacity_retention"]["relative"]
    assert rel["n_anchors"] == 1 and rel["anchored_value"] is not None


def test_a_bad_item_keeps_its_error_and_the_others_get_deltas(client: TestClient) -> None:
    body = {
        "items": [
            {"formula": RU, **PROTOCOL},
            {"formula": "Na2XyO3", **PROTOCOL},
            {"formula": TI, "cycles": 50},
        ],
        "targets": ["capacity_retention"],
        "reference": HOST,
    }
    out = client.post("/v1/predict", json=body).json()
    rels = [x["predictions"]["capacity_retention"]["relative"] for x in out["results"]]
    assert rels[0]["delta"] is not None and rels[2]["delta"] is not None
    assert rels[1]["delta"] is None and "Xy" in rels[1]["error"]
    # two distinct protocols among the good items and the bad one: the host under each
    cycles = sorted(h["conditions"]["cycles"] for h in out["reference"])
    assert cycles == [50, 200]
    assert out["anchors"] is None


def test_a_target_without_relative_calibration_says_so_per_item(client: TestClient) -> None:
    body = {
        "items": [{"formula": "Na3.2Zr1.8Sc0.2Si2PO12"}],
        "targets": ["ionic_conductivity"],
        "reference": "Na3Zr2Si2PO12",
    }
    out = client.post("/v1/predict", json=body).json()
    answer = out["results"][0]["predictions"]["ionic_conductivity"]
    assert answer["value"] is not None  # the absolute answer is unchanged
    assert answer["relative"]["delta"] is None and "retrain" in answer["relative"]["error"]


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"reference": "Na2XyO3"}, "reference 'Na2XyO3'"),
        ({"reference": ""}, "reference"),
        ({"anchors": [{"formula": HOST, "cycles": 200, "measured": 45.5}], "reference": None}, "reference"),
        ({"anchors": [{"formula": HOST, "cycles": 200}]}, "measured"),
        ({"anchors": [{"formula": HOST, "cycles": 200, "measured": "lots"}]}, "measured"),
        ({"anchors": [{"formula": HOST, "cycles": 200, "measured": 45.5}] * 101}, "anchors"),
        ({"anchors": []}, "anchors"),
        ({"anchors": [{"formula": HOST, "measured": 45.5, "target": "average_voltage"}]}, "not requested"),
    ],
)
def test_bad_reference_or_anchors_are_422_naming_the_input(
    client: TestClient, change: dict, where: str
) -> None:
    body = {"items": [{"formula": RU, **PROTOCOL}], "targets": ["capacity_retention"], "reference": HOST}
    body.update(change)
    r = client.post("/v1/predict", json=body)
    assert r.status_code == 422, r.text
    assert where in r.text


def test_rank_dopants_by_p_better_includes_the_host_at_zero(client: TestClient) -> None:
    body = {
        "family": "p2_layered_oxide",
        "host": HOST,
        "site": "Mn",
        "dopants": ["Ru", "Ti", "Sn", "Zr"],
        "fractions": [0.05, 0.1],
        "compensation": {"mode": "variable_valence", "element": "Mn", "range": [3, 4]},
        "conditions": PROTOCOL,
        "targets": ["capacity_retention"],
        "ranking": {"mode": "value", "objectives": {"capacity_retention": {"by": "p_better"}}},
        "anchors": [{"formula": HOST, **PROTOCOL, "measured": 45.5}],
        "top_k": 20,
    }
    r = client.post("/v1/rank-dopants", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert "p_better" in out["ranking"] and HOST in out["ranking"]
    rows = out["candidates"]
    p = [row["capacity_retention_p_better"] for row in rows if row["rank"] is not None]
    assert p == sorted(p, reverse=True) and len(set(p)) > 1
    (host,) = [row for row in rows if row["is_host"]]
    assert host["capacity_retention_delta"] == pytest.approx(0.0, abs=1e-9)
    widths = {
        round(row["capacity_retention_delta_upper_90"] - row["capacity_retention_delta_lower_90"], 6)
        for row in rows
    }
    assert len(widths) > 1, "per-candidate delta intervals"
    assert all(math.isfinite(row["capacity_retention_anchored_prediction"]) for row in rows)
