"""GET /v1/models and GET /health against real trained champions in a temporary MLflow registry: the
registry listing and the loaded versions are what this module tests, so it keeps the trained store (the
HTTP behaviour of /v1/predict runs on small fitted models in test_api_predict.py)."""

from __future__ import annotations

import math

import pytest
from fastapi.testclient import TestClient

pytestmark = [pytest.mark.slow, pytest.mark.mlflow]


def test_health_reports_the_registered_champion_versions(client: TestClient) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["ready"] is True
    assert set(body["models"]) == {"ionic_conductivity", "capacity_retention"}
    assert all(v.isdigit() for v in body["models"].values())


def test_models_lists_champions_with_units_and_cv_metrics(client: TestClient) -> None:
    models = client.get("/v1/models").json()["models"]
    by_target = {m["target"]: m for m in models}
    assert set(by_target) == {"ionic_conductivity", "capacity_retention"}
    conductivity = by_target["ionic_conductivity"]
    assert conductivity["name"] == "nascreen-ionic_conductivity"
    assert "champion" in conductivity["aliases"] and conductivity["loaded"] is True
    assert conductivity["unit"] == "log10(S/cm)" and by_target["capacity_retention"]["unit"] == "%"
    assert conductivity["metrics"], "the CV metrics of the training run are listed"
    assert all(math.isfinite(v) for v in conductivity["metrics"].values())
    versions = client.get("/health").json()["models"]
    assert conductivity["version"] == versions["ionic_conductivity"]
