"""POST /v1/predict and GET /health through the app on small fitted models (``fitted_client``: real
estimators behind a dependency override, no MLflow store, no champion training)."""

from __future__ import annotations

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from models.predictor import PredictorLike, training_elements
from models.targets import TargetName
from service.api.schemas.predict import PREDICT_EXAMPLE

Fitted = dict[TargetName, PredictorLike]


def test_health_is_ok_with_the_loaded_versions(fitted_client: TestClient) -> None:
    body = fitted_client.get("/health").json()
    assert body["status"] == "ok" and body["ready"] is True
    assert set(body["models"]) == {"ionic_conductivity", "capacity_retention"}
    assert all(v.isdigit() for v in body["models"].values())


def test_the_documented_example_answers_per_item_and_target(fitted_client: TestClient) -> None:
    r = fitted_client.post("/v1/predict", json=PREDICT_EXAMPLE)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["index"] for x in results] == [0, 1]
    assert [x["formula"] for x in results] == ["Na3Zr2Si2PO12", "P2-Na0.67MnO2"]
    versions = fitted_client.get("/health").json()["models"]

    nasicon = results[0]["predictions"]["ionic_conductivity"]
    assert nasicon["error"] is None and nasicon["unit"] == "log10(S/cm)"
    assert nasicon["lower_90"] <= nasicon["value"] <= nasicon["upper_90"]
    assert nasicon["std"] >= 0 and isinstance(nasicon["in_domain"], bool)
    assert nasicon["model_version"] == versions["ionic_conductivity"]
    assert -12 < nasicon["value"] < 0, "a NASICON conductivity in log10(S/cm) is a small negative number"

    cathode = results[1]["predictions"]["capacity_retention"]
    assert cathode["error"] is None and cathode["unit"] == "%"
    assert cathode["lower_90"] <= cathode["value"] <= cathode["upper_90"]
    assert cathode["model_version"] == versions["capacity_retention"]
    # retention needs a cycle number: the NASICON item without one fails for that target alone
    missing_cycles = results[0]["predictions"]["capacity_retention"]
    assert missing_cycles["value"] is None and "cycles" in missing_cycles["error"]


def test_a_bad_item_fails_alone_with_its_reason(fitted_client: TestClient) -> None:
    items = [
        {"formula": "Na3Zr2Si2PO12", "id": "good-1"},
        {"formula": "Na2XyO3", "id": "bad"},
        {"formula": "Na3Zr1.9Hf0.1Si2PO12", "id": "good-2"},
    ]
    r = fitted_client.post("/v1/predict", json={"items": items, "targets": ["ionic_conductivity"]})
    assert r.status_code == 200
    results = r.json()["results"]
    assert [x["id"] for x in results] == ["good-1", "bad", "good-2"]
    bad = results[1]["predictions"]["ionic_conductivity"]
    assert bad["value"] is None and bad["in_domain"] is None
    assert "Xy" in bad["error"] and "Na2XyO3" in bad["error"]
    for i in (0, 2):
        assert results[i]["predictions"]["ionic_conductivity"]["error"] is None


@pytest.mark.parametrize("repeat", [1, 10], ids=["4 items", "40 items"])
def test_answers_equal_the_in_process_predictor(
    fitted_client: TestClient, fitted_predictors: Fitted, repeat: int
) -> None:
    formulas = ["Na3Zr2Si2PO12", "Na3.2Zr1.8Sc0.2Si2PO12", "Na2ZrCl6", "Na3PS4"] * repeat
    r = fitted_client.post(
        "/v1/predict",
        json={"items": [{"formula": f} for f in formulas], "targets": ["ionic_conductivity"]},
    )
    got = [x["predictions"]["ionic_conductivity"] for x in r.json()["results"]]
    predictor = fitted_predictors[TargetName.IONIC_CONDUCTIVITY]
    want = predictor.predict_frame(pd.DataFrame({"formula": formulas}))
    for answer, (_, row) in zip(got, want.iterrows(), strict=True):
        assert answer["value"] == pytest.approx(row["prediction"], rel=1e-12)
        assert answer["upper_90"] == pytest.approx(row["upper_90"], rel=1e-12)
        assert answer["in_domain"] == bool(row["in_domain"])
        assert answer["domain_reason"] == row["domain_reason"]


def test_phase_is_an_item_field_read_like_the_cli_column(
    fitted_client: TestClient, fitted_predictors: Fitted
) -> None:
    items = [
        {"formula": "NaTaCl6", "phase": "crystalline"},
        {"formula": "NaTaCl6", "phase": "Amorphous"},
        {"formula": "NaTaCl6"},
        {"formula": "NaTaCl6", "phase": "molten"},
    ]
    r = fitted_client.post("/v1/predict", json={"items": items, "targets": ["ionic_conductivity"]})
    assert r.status_code == 200, r.text
    got = [x["predictions"]["ionic_conductivity"] for x in r.json()["results"]]
    predictor = fitted_predictors[TargetName.IONIC_CONDUCTIVITY]
    frame = pd.DataFrame({"formula": ["NaTaCl6"] * 3, "phase": ["crystalline", "amorphous", None]})
    want = predictor.predict_frame(frame)
    for answer, value in zip(got[:3], want["prediction"], strict=True):
        assert answer["error"] is None
        assert answer["value"] == pytest.approx(value, rel=1e-12)
    assert got[3]["value"] is None and "molten" in got[3]["error"]


def test_out_of_domain_items_say_why(fitted_client: TestClient, fitted_predictors: Fitted) -> None:
    predictor = fitted_predictors[TargetName.IONIC_CONDUCTIVITY]
    seen = training_elements(predictor)
    unseen = next(el for el in ("Os", "Ir", "Pt", "Re", "Rh", "Au", "Pd", "Ru") if el not in seen)
    formula = f"Na2{unseen}O3"
    r = fitted_client.post(
        "/v1/predict", json={"items": [{"formula": formula}], "targets": ["ionic_conductivity"]}
    )
    answer = r.json()["results"][0]["predictions"]["ionic_conductivity"]
    assert answer["error"] is None
    assert answer["in_domain"] is False
    assert unseen in answer["domain_reason"]


def test_a_target_without_a_model_is_503(fitted_client: TestClient) -> None:
    r = fitted_client.post(
        "/v1/predict", json={"items": [{"formula": "NaMnO2"}], "targets": ["average_voltage"]}
    )
    assert r.status_code == 503
    assert "average_voltage" in r.json()["detail"]


def test_single_threaded_compute_changes_threads_not_answers(fitted_predictors: Fitted) -> None:
    from joblib.parallel import get_active_backend
    from threadpoolctl import threadpool_info

    from service.api.compute import SingleThreadedCompute

    predictor = fitted_predictors[TargetName.IONIC_CONDUCTIVITY]
    frame = pd.DataFrame({"formula": ["Na3Zr2Si2PO12", "Na2ZrCl6", "Na3PS4", "Na2XyO3"]})
    free = predictor.predict_frame(frame)
    compute = SingleThreadedCompute()
    with compute():
        assert type(get_active_backend()[0]).__name__ == "SequentialBackend"
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
        limited = predictor.predict_frame(frame)
    pd.testing.assert_frame_equal(free, limited)
    assert type(get_active_backend()[0]).__name__ != "SequentialBackend"


def test_input_float_columns_equal_numpys_conversion() -> None:
    """The float input columns equal ``np.array(values, dtype=float)`` (None -> NaN)."""
    import numpy as np

    from service.api.predict_input import item_columns

    for values in ([None, None], [None, 2.0], [1.0, 3.0], [None]):
        rows = [{"formula": "NaCl", "cycles": v} for v in values]
        expected = np.array(values, dtype=float)
        result = item_columns(rows)["cycles"]
        assert result.dtype == expected.dtype and np.array_equal(result, expected, equal_nan=True)
    assert np.isnan(item_columns([{"formula": "NaCl"}])["voltage_low_V"]).all()
