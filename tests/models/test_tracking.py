"""MLflow edge against a temporary SQLite store: log -> register -> alias -> load, and the listing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestRegressor

from models import tracking
from models.targets import TargetName

pytestmark = pytest.mark.mlflow


def _model_and_frame() -> tuple[RandomForestRegressor, pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=40), "b": rng.normal(size=40)})
    y = 2 * X["a"].to_numpy() - X["b"].to_numpy()
    model = RandomForestRegressor(n_estimators=5, random_state=0).fit(X, y)
    return model, X, y


def test_default_uri_is_sqlite_under_project_mlruns(tmp_path: Path) -> None:
    uri = tracking.default_tracking_uri(tmp_path)
    assert uri == f"sqlite:///{(tmp_path / 'mlruns' / 'mlflow.db').as_posix()}"
    assert tracking.artifact_root(uri) == tmp_path / "mlruns" / "artifacts"
    assert tracking.artifact_root("http://127.0.0.1:5000") is None


def test_pip_requirements_are_pinned_without_local_labels() -> None:
    reqs = tracking.pip_requirements()
    assert any(r.startswith("scikit-learn==") for r in reqs)
    assert all("+" not in r for r in reqs)


def test_log_register_alias_load_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # nothing may land in cwd: checked below
    cwd_before = set(Path.cwd().iterdir())
    uri = tracking.default_tracking_uri(tmp_path / "project")
    target = TargetName.IONIC_CONDUCTIVITY
    assert tracking.champion_version(target, uri) is None
    with pytest.raises(tracking.NoChampionError, match="nascreen-ionic_conductivity@champion"):
        tracking.load_champion(target, uri)

    model, X, _ = _model_and_frame()
    versions = []
    for _ in range(2):
        logged = tracking.log_training_run(
            tracking_uri=uri,
            target=target,
            model=model,
            input_example=X,
            params={"model": "random_forest", "feature_set": "magpie_v1", "data_hash": "abc"},
            metrics={"cv_mae": 0.5, "cv_coverage_90": 0.9, "bad": float("nan")},
            figures={"parity": b"\x89PNG fake"},
            model_card="# card\n",
            tables={"metrics": pd.DataFrame({"metric": ["mae"], "value": [0.5]})},
            project_root=tmp_path,
        )
        versions.append(tracking.register_champion(tracking_uri=uri, target=target, logged=logged))
    assert versions == ["1", "2"]

    loaded, version = tracking.load_champion(target, uri)
    assert version == "2"
    np.testing.assert_allclose(loaded.predict(X), model.predict(X))

    # artifacts live next to the database, not in cwd
    artifacts = tmp_path / "project" / "mlruns" / "artifacts" / "nascreen-ionic_conductivity"
    assert any(artifacts.rglob("model_card.md"))
    assert any(artifacts.rglob("parity.png"))
    assert set(Path.cwd().iterdir()) == cwd_before | {tmp_path / "project"}

    listed = tracking.list_registered(uri)
    assert [(r["name"], r["version"], r["aliases"]) for r in listed] == [
        ("nascreen-ionic_conductivity", "2", ["champion"]),
        ("nascreen-ionic_conductivity", "1", []),
    ]
    assert listed[0]["metrics"]["cv_mae"] == pytest.approx(0.5)
    assert "bad" not in listed[0]["metrics"]
    assert listed[0]["model"] == "random_forest"


def test_generic_log_run(tmp_path: Path) -> None:
    uri = tracking.default_tracking_uri(tmp_path)
    report = tmp_path / "report.csv"
    report.write_text("a,b\n1,2\n")
    run_id = tracking.log_run(
        "nascreen-screening",
        params={"spec": "x"},
        metrics={"n_candidates": 3},
        artifacts={"reports": report},
        tags={"kind": "screening"},
        tracking_uri=uri,
    )
    assert run_id
    assert any((tmp_path / "mlruns" / "artifacts" / "nascreen-screening").rglob("report.csv"))
