"""One definition of the battery conditions (models.conditions), seen through every edge: the spec form, the
spec's typed Conditions, the candidate columns and the HTTP schemas carry exactly its fields, and a value
out of its bounds is refused by the spec parser, /v1/predict and /v1/rank-dopants alike."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from fastapi.testclient import TestClient

from models.conditions import CONDITION_COLUMNS, NUMERIC_CONDITIONS
from screening.schema import CANDIDATE_COLUMNS
from screening.spec import Conditions, SpecError, parse_spec
from screening.spec_forms import ConditionsForm
from service.api.schemas.conditions import BatteryConditions
from service.api.schemas.predict import PredictItem
from service.api.schemas.rank import RankRequest

GOOD = {"cycles": 100, "current_mA_g": 20, "voltage_low_V": 2.0, "voltage_high_V": 4.5}
RANK: dict[str, Any] = {
    "family": "p2_layered_oxide",
    "host": "Na0.6Li0.2Mn0.8O2",
    "site": "Mn",
    "dopants": ["Ti"],
    "fractions": [0.05],
    "compensation": {"mode": "variable_valence", "range": [3, 4]},
    "targets": ["capacity_retention"],
}


def test_every_declaration_has_exactly_the_tables_fields() -> None:
    assert tuple(f.name for f in dataclasses.fields(Conditions)) == CONDITION_COLUMNS
    assert tuple(ConditionsForm.model_fields) == CONDITION_COLUMNS
    assert tuple(BatteryConditions.model_fields) == CONDITION_COLUMNS
    assert set(CONDITION_COLUMNS) <= set(PredictItem.model_fields)
    assert RankRequest.model_fields["conditions"].annotation == BatteryConditions | None
    assert set(CONDITION_COLUMNS) <= set(CANDIDATE_COLUMNS)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"cycles": 2e6}, "at most"),
        ({"voltage_high_V": 50}, "at most"),
        ({"current_mA_g": 0}, "> 0"),
        ({"voltage_low_V": 4.5}, "below"),
    ],
)
def test_out_of_bounds_is_refused_by_every_edge(
    fitted_client: TestClient, change: dict[str, float], needle: str
) -> None:
    conditions = {**GOOD, **change}
    with pytest.raises(SpecError, match=needle):
        parse_spec({**RANK, "name": "bounds", "conditions": conditions})
    r = fitted_client.post("/v1/rank-dopants", json={**RANK, "conditions": conditions})
    assert r.status_code == 422 and needle in r.text, r.text
    item = {"formula": "P2-Na0.67MnO2", **conditions}
    r = fitted_client.post("/v1/predict", json={"items": [item], "targets": ["capacity_retention"]})
    assert r.status_code == 422 and needle in r.text, r.text


def test_in_bounds_conditions_are_answered_by_every_edge(fitted_client: TestClient) -> None:
    spec = parse_spec({**RANK, "name": "bounds", "conditions": GOOD})
    assert {k: getattr(spec.conditions, k) for k in NUMERIC_CONDITIONS} == GOOD
    r = fitted_client.post("/v1/rank-dopants", json={**RANK, "conditions": GOOD})
    assert r.status_code == 200, r.text
    item = {"formula": "P2-Na0.67MnO2", **GOOD}
    r = fitted_client.post("/v1/predict", json={"items": [item], "targets": ["capacity_retention"]})
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["predictions"]["capacity_retention"]["error"] is None
