"""``refit_with_campaign`` keeps the base table: the campaign rows are added to it, whatever columns the
target's curated table lacks (retention has no ``censored`` column; campaign rows carry one)."""

from __future__ import annotations

from pathlib import Path

from sklearn.ensemble import RandomForestRegressor

from models.campaign import campaign_rows, refit_with_campaign
from models.data import load_curated
from models.measurements import Measurement
from models.targets import TargetName
from models.training import Candidate, TrainingConfig, fit_uncertain, training_frame

T = TargetName.CAPACITY_RETENTION
DATA = Path(__file__).resolve().parents[2] / "data"


def test_retention_refit_learns_from_the_base_table_and_the_campaign_rows() -> None:
    table = load_curated(T, DATA).sample(n=150, random_state=0).reset_index(drop=True)
    assert "censored" not in table.columns
    X, y, groups, _, _ = training_frame(T, table)
    forest = RandomForestRegressor(n_estimators=5, min_samples_leaf=2, n_jobs=1, random_state=0)
    model = fit_uncertain(
        T, Candidate("random_forest", "magpie_v1", forest), X, y, groups, TrainingConfig(n_splits=3)
    )
    measured = [
        Measurement(f"Na0.6Li0.2Mn{0.8 - x:.2f}Ru{x:.2f}O2", T, 80.0 + 10 * x, {"cycles": 100.0}, round=1)
        for x in (0.02, 0.04, 0.06, 0.08, 0.1)
    ]
    refit = refit_with_campaign(model, table, campaign_rows(T, measured, campaign="c1"), T)
    assert len(refit.oof_) == len(y) + 5
    assert (refit.oof_["group"].astype(str) == "campaign:c1").sum() == 5
