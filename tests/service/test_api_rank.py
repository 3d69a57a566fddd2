"""POST /v1/rank-dopants on small fitted models (``fitted_client``; limits from ``fitted_settings``)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from service.api.schemas.rank import RANK_EXAMPLE


def test_the_documented_example_ranks_every_candidate(fitted_client: TestClient) -> None:
    r = fitted_client.post("/v1/rank-dopants", json=RANK_EXAMPLE)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["targets"] == ["ionic_conductivity"]
    assert "ucb" in body["ranking"].lower()
    # 4 dopants x 3 fractions + the host reference
    assert body["n_generated"] == 13
    assert body["n_generated"] == body["n_scored"] + body["n_rejected"]
    rows = body["candidates"]
    assert 0 < len(rows) <= RANK_EXAMPLE["top_k"]
    ranked = [row for row in rows if row["rank"] is not None]
    assert [row["rank"] for row in ranked] == list(range(1, len(ranked) + 1))
    scores = [row["score"] for row in ranked]
    assert scores == sorted(scores, reverse=True)
    top = rows[0]
    assert {
        "formula",
        "dopant",
        "fraction",
        "ionic_conductivity_prediction",
        "ionic_conductivity_std",
    } <= set(top)
    assert top["ionic_conductivity_lower_90"] <= top["ionic_conductivity_prediction"]
    assert {row["dopant"] for row in rows} <= {"Hf", "Ti", "Sn", "Nb", None, ""}


def test_value_mode_orders_by_the_prediction(fitted_client: TestClient) -> None:
    body = {**RANK_EXAMPLE, "ranking": {"mode": "value"}, "top_k": 50}
    rows = fitted_client.post("/v1/rank-dopants", json=body).json()["candidates"]
    preds = [row["ionic_conductivity_prediction"] for row in rows if row["rank"] is not None]
    assert preds == sorted(preds, reverse=True)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"dopants": ["Hf", "Xy"]}, "Xy"),
        ({"host": "Na3Xy2Si2PO12"}, "unknown element Xy"),
        ({"site": "Mn"}, "Mn"),
        ({"family": "garnet-ish"}, "family"),
        ({"ranking": {"mode": "lottery"}}, "lottery"),
    ],
)
def test_invalid_requests_are_422_naming_the_input(
    fitted_client: TestClient, change: dict[str, object], needle: str
) -> None:
    r = fitted_client.post("/v1/rank-dopants", json={**RANK_EXAMPLE, **change})
    assert r.status_code == 422, r.text
    assert needle in str(r.json()["detail"])


def test_a_fraction_grid_over_the_limit_is_422(fitted_client: TestClient) -> None:
    body = {**RANK_EXAMPLE, "dopants": ["Hf"], "fractions": [0.01 * i for i in range(1, 12)]}
    r = fitted_client.post("/v1/rank-dopants", json=body)
    assert r.status_code == 422
    assert "at most 10" in r.json()["detail"]


def test_a_screen_too_big_for_a_request_is_413_pointing_to_jobs(fitted_client: TestClient) -> None:
    body = {
        **RANK_EXAMPLE,
        "dopants": ["Hf", "Ti", "Sn", "Nb", "Ta"],
        "fractions": [0.02 * i for i in range(1, 10)],
    }
    r = fitted_client.post("/v1/rank-dopants", json=body)
    assert r.status_code == 413
    assert "/v1/screening-jobs" in r.json()["detail"]


def test_a_family_whose_model_is_missing_is_503(fitted_client: TestClient) -> None:
    body = {
        "family": "p2_layered_oxide",
        "host": "Na0.6Li0.2Mn0.8O2",
        "site": "Mn",
        "dopants": ["Ti"],
        "fractions": [0.05],
        "compensation": "variable_valence",
        "conditions": {"cycles": 100, "current_mA_g": 20, "voltage_low_V": 2.0, "voltage_high_V": 4.5},
    }
    r = fitted_client.post("/v1/rank-dopants", json=body)
    assert r.status_code == 503, r.text
    assert "average_voltage" in r.json()["detail"]
