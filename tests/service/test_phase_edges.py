"""The spec's ``phase`` reaches the conductivity model through both edges (``nascreen screen`` and
``/v1/rank-dopants``), and the ranked table, top table, summary and response say which phase was used.
Real champions trained on the shipped data (the session store of tests/service/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from models.predictor import load_predictors
from models.targets import TargetName
from service.cli import _register, app

pytestmark = pytest.mark.mlflow

SPECS = Path(__file__).resolve().parents[2] / "examples" / "specs"
HALIDE = {
    "family": "halide",
    "host": "Na2ZrCl6",
    "site": "Zr",
    "dopants": ["Y", "Ta"],
    "fractions": [0.1, 0.2],
    "compensation": "na_content",
    "ranking": {"mode": "value"},
    "top_k": 10,
}


def _direct(uri: str, formulas: list[str], phase: str) -> list[float]:
    """What the champion itself predicts for these formulas in ``phase``."""
    (predictor,) = load_predictors([TargetName.IONIC_CONDUCTIVITY], uri).values()
    out = predictor.predict_frame(pd.DataFrame({"formula": formulas, "phase": [phase] * len(formulas)}))
    return out["prediction"].tolist()


@pytest.mark.parametrize("phase", ["amorphous", "crystalline"])
def test_cli_screen_predicts_every_candidate_in_the_spec_phase(
    served_tracking_uri: str, tmp_path: Path, phase: str
) -> None:
    spec = yaml.safe_load((SPECS / "oxychloride_na2o2_mcly.yaml").read_text())
    assert spec["phase"] == "amorphous"  # the seed glasses are amorphous
    grid = {"x": [0.9, 1.0]}
    spec.update(dopants=["Hf", "Ta"], phase=phase, template={**spec["template"], "variables": grid})
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    if not any(c.name == "screen" for c in app.registered_commands):
        _register()
    out = tmp_path / "out"
    args = ["screen", str(path), "--executor", "local", "--out", str(out), "--no-mlflow"]
    result = CliRunner().invoke(
        app, [*args, "--tracking-uri", served_tracking_uri], catch_exceptions=False, terminal_width=200
    )
    assert result.exit_code == 0, result.output
    assert f"phase {phase}" in result.output
    ranked = pd.read_parquet(out / "ranked.parquet")
    assert len(ranked) > 2 and (ranked["phase"] == phase).all()
    expected = _direct(served_tracking_uri, ranked["formula"].tolist(), phase)
    assert ranked["ionic_conductivity_prediction"].tolist() == pytest.approx(expected)
    assert set(pd.read_csv(out / "top.csv")["phase"]) == {phase}
    assert json.loads((out / "summary.json").read_text())["phase"] == phase


def test_rank_dopants_takes_a_phase_and_says_it(client: TestClient, served_tracking_uri: str) -> None:
    answers = {}
    for phase in ("glass", None):
        body = {**HALIDE, **({"phase": phase} if phase else {})}
        r = client.post("/v1/rank-dopants", json=body)
        assert r.status_code == 200, r.text
        answers[phase] = r.json()
        assert answers[phase]["phase"] == (phase or "unknown")
        rows = answers[phase]["candidates"]
        expected = _direct(served_tracking_uri, [row["formula"] for row in rows], phase or "unknown")
        assert [row["ionic_conductivity_prediction"] for row in rows] == pytest.approx(expected)


def test_rank_dopants_names_a_bad_phase(client: TestClient) -> None:
    r = client.post("/v1/rank-dopants", json={**HALIDE, "phase": "sintered-ish"})
    assert r.status_code == 422, r.text
    assert "phase" in str(r.json()["detail"]) and "sintered-ish" in str(r.json()["detail"])
