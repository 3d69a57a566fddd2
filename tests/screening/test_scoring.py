"""score_candidates: per-target columns, row order kept, per-row errors isolated (never dropped)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from featurize.composition import parse_formula
from models.predictor import Predictor
from models.targets import TargetName
from screening.candidates import candidate_chunk, count_candidates
from screening.ranking import parse_ranking, rank
from screening.scoring import OUTPUT_COLUMNS, score_candidates
from screening.spec import parse_spec

SPEC = {
    "name": "p2",
    "family": "p2_layered_oxide",
    "host": "Na0.6Li0.2Mn0.8O2",
    "site": "Mn",
    "dopants": ["Ru", "Ti", "Nb", "Mg"],
    "fractions": [0.05, 0.1, 0.2],
    "compensation": {"mode": "variable_valence", "range": [3, 4]},
    "conditions": {"cycles": 100, "current_mA_g": 170, "voltage_low_V": 2.0, "voltage_high_V": 4.5},
}


class MnFractionModel:
    """A deterministic model for the real Predictor: prediction 100 * Mn fraction, std 1 + cycles/100."""

    def __init__(self) -> None:
        self.seen: list[pd.DataFrame] = []

    def predict_with_uncertainty(self, X: pd.DataFrame) -> pd.DataFrame:
        self.seen.append(X.copy())
        mn = np.array([parse_formula(f).element_fraction("Mn") for f in X["formula"]])
        std = 1.0 + X["cycles"].to_numpy(float) / 100.0
        return pd.DataFrame(
            {
                "prediction": 100 * mn,
                "std": std,
                "lower_90": 100 * mn - 1.645 * std,
                "upper_90": 100 * mn + 1.645 * std,
                "in_domain": mn > 0.14,
                "domain_reason": np.where(mn > 0.14, "", "far from training data"),
            },
            index=X.index,
        )


class Raising:
    """predict_frame raises when the batch holds a formula containing Nb (a predictor bug on some rows)."""

    def __init__(self) -> None:
        self.calls = 0

    def predict_frame(self, df: pd.DataFrame) -> pd.DataFrame:
        self.calls += 1
        if df["formula"].str.contains("Nb").any():
            raise RuntimeError("featuriser crashed on Nb")
        n = len(df)
        return pd.DataFrame(
            {
                "prediction": np.arange(n, dtype=float),
                "std": np.ones(n),
                "lower_90": np.zeros(n),
                "upper_90": np.ones(n),
                "in_domain": np.ones(n, dtype=bool),
                "domain_reason": [""] * n,
                "model_version": ["7"] * n,
                "error": [""] * n,
            },
            index=df.index,
        )


def accepted() -> pd.DataFrame:
    spec = parse_spec(SPEC)
    return candidate_chunk(spec, 0, count_candidates(spec)).accepted


def test_scores_every_target_with_a_real_predictor() -> None:
    acc = accepted()
    model = MnFractionModel()
    predictors: dict[Any, Any] = {
        TargetName.CAPACITY_RETENTION: Predictor(TargetName.CAPACITY_RETENTION, model, "3"),
        "average_voltage": Predictor(TargetName.AVERAGE_VOLTAGE, MnFractionModel(), "5"),
    }
    scored = score_candidates(acc, predictors)
    assert len(scored) == len(acc) and scored["formula"].tolist() == acc["formula"].tolist()
    for t in ("capacity_retention", "average_voltage"):
        assert all(f"{t}_{c}" in scored.columns for c in OUTPUT_COLUMNS)
    host = scored[scored["is_host"]].iloc[0]
    assert host["capacity_retention_prediction"] == pytest.approx(100 * 0.8 / 3.6)
    assert host["capacity_retention_std"] == pytest.approx(2.0)  # the conditions reached the model
    assert (scored["capacity_retention_model_version"] == "3").all()
    assert (scored["average_voltage_model_version"] == "5").all()
    assert (scored["capacity_retention_error"] == "").all()
    sent = model.seen[0]
    assert {"formula", "cycles", "current_mA_g", "voltage_low_V", "voltage_high_V", "working_ion"} <= set(
        sent
    )


def test_row_errors_from_the_predictor_are_kept() -> None:
    acc = accepted()
    acc.loc[3, "formula"] = "Na0.6Xy0.2O2"
    acc.loc[4, "cycles"] = -5
    scored = score_candidates(
        acc, {"capacity_retention": Predictor("capacity_retention", MnFractionModel(), "1")}
    )
    assert len(scored) == len(acc)
    assert "Xy" in scored.loc[3, "capacity_retention_error"]
    assert "cycles" in scored.loc[4, "capacity_retention_error"]
    assert np.isnan(scored.loc[3, "capacity_retention_prediction"])
    assert (scored.drop(index=[3, 4])["capacity_retention_error"] == "").all()


def test_a_raising_predictor_is_bisected_to_the_failing_rows() -> None:
    acc = accepted()
    predictor = Raising()
    scored = score_candidates(acc, {"ionic_conductivity": predictor})
    nb = scored["formula"].str.contains("Nb")
    assert nb.sum() == 3
    assert (scored.loc[nb, "ionic_conductivity_error"] == "RuntimeError: featuriser crashed on Nb").all()
    assert scored.loc[nb, "ionic_conductivity_prediction"].isna().all()
    assert (scored.loc[~nb, "ionic_conductivity_error"] == "").all()
    assert scored.loc[~nb, "ionic_conductivity_prediction"].notna().all()
    assert predictor.calls < len(acc) * 2  # bisection, not one call per row


def test_silent_nan_and_wrong_row_count_become_errors() -> None:
    class Silent(Raising):
        def predict_frame(self, df: pd.DataFrame) -> pd.DataFrame:
            out = super().predict_frame(df.assign(formula="x"))
            out.loc[out.index[0], "prediction"] = np.nan
            return out

    class Short(Raising):
        def predict_frame(self, df: pd.DataFrame) -> pd.DataFrame:
            return super().predict_frame(df.assign(formula="x")).iloc[:-1]

    acc = accepted().iloc[:4]
    silent = score_candidates(acc, {"ionic_conductivity": Silent()})
    assert silent["ionic_conductivity_error"].tolist() == ["no prediction returned", "", "", ""]
    short = score_candidates(acc, {"ionic_conductivity": Short()})
    assert short["ionic_conductivity_error"].str.contains("returned 0 rows for 1").all()


def test_empty_input() -> None:
    empty = accepted().iloc[:0]
    scored = score_candidates(empty, {"ionic_conductivity": Raising()})
    assert scored.empty and "ionic_conductivity_prediction" in scored.columns


@pytest.mark.slow
@pytest.mark.mlflow
def test_end_to_end_with_the_trained_champion(trained_retention_store: Any) -> None:
    """Generate -> score with a real trained champion -> rank (UCB); every row kept, host included."""
    from models.predictor import load_predictors

    spec = parse_spec({**SPEC, "targets": ["capacity_retention"]})
    acc = candidate_chunk(spec, 0, count_candidates(spec)).accepted
    predictors = load_predictors(spec.targets, trained_retention_store.tracking_uri)
    scored = score_candidates(acc, predictors)
    assert scored["capacity_retention_prediction"].notna().all()
    assert (scored["capacity_retention_std"] > 0).all()
    ranked = rank(scored, parse_ranking({"mode": "ucb", "kappa": 1.0}, spec.targets))
    assert len(ranked) == len(acc) and ranked["rank"].iloc[0] == 1
    assert ranked["is_host"].sum() == 1
