"""Predictor: row validation, one output row per input row in order, errors instead of silent NaNs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.predictor import OUTPUT_COLUMNS, Predictor, load_predictors
from models.targets import TARGETS, TargetName

pytestmark = pytest.mark.mlflow


@pytest.fixture(scope="module")
def retention(trained_retention_store) -> Predictor:
    predictors = load_predictors(["capacity_retention"], trained_retention_store.tracking_uri)
    assert list(predictors) == [TargetName.CAPACITY_RETENTION]
    return predictors[TargetName.CAPACITY_RETENTION]


def test_one_row_per_input_in_order_with_reasons(retention: Predictor, trained_retention_store) -> None:
    df = pd.DataFrame(
        {
            "formula": [
                "Na0.67Mn0.67Ni0.33O2",  # good
                "Na2XyO3",  # unknown element
                "NaNi0.5Mn0.5O2",  # missing cycles
                "NaFe0.5Mn0.5O2",  # negative cycles
                "",  # empty formula
                "P2-Na0.6Li0.2Mn0.7Ru0.1O2",  # good, structure type from the prefix
                "NaHfCl6",  # parses, but Hf and Cl never seen in retention training
            ],
            "cycles": [100, 100, None, -5, 100, 200, 100],
            "current_mA_g": [20, None, None, None, None, "", None],
        },
        index=[10, 11, 12, 13, 14, 15, 16],
    )
    out = retention.predict_frame(df)
    assert list(out.columns) == list(OUTPUT_COLUMNS)
    assert list(out.index) == list(df.index)
    errors = out["error"].tolist()
    assert errors[0] == "" and errors[5] == "" and errors[6] == ""
    assert "unknown element Xy" in errors[1] and '"Na2XyO3"' in errors[1]
    assert errors[2] == "cycles is required"
    assert "cycles" in errors[3] and "negative" in errors[3]
    assert errors[4] != ""
    bad = out["error"] != ""
    assert out.loc[bad, "prediction"].isna().all()
    assert not out.loc[bad, "in_domain"].any()
    good = ~bad
    assert np.isfinite(out.loc[good, ["prediction", "std", "lower_90", "upper_90"]].to_numpy()).all()
    assert (out.loc[good, "lower_90"] <= out.loc[good, "prediction"]).all()
    assert (out.loc[good, "prediction"] <= out.loc[good, "upper_90"]).all()
    assert (out["model_version"] == trained_retention_store.version).all()
    # unseen elements: out of domain with a reason naming them
    assert not out.loc[16, "in_domain"]
    assert "Cl" in out.loc[16, "domain_reason"] and "Hf" in out.loc[16, "domain_reason"]


def test_good_rows_match_the_model_alone(retention: Predictor) -> None:
    """Bad rows are removed before the model sees the batch, so good rows get exactly the model's answer."""
    good = pd.DataFrame({"formula": ["Na0.67Mn0.67Ni0.33O2", "NaNi0.5Mn0.5O2"], "cycles": [50.0, 300.0]})
    mixed = pd.concat(
        [good.iloc[:1], pd.DataFrame({"formula": ["Na2XyO3"], "cycles": [50.0]}), good.iloc[1:]]
    )
    expected = retention.model.predict(good)
    out = retention.predict_frame(mixed.reset_index(drop=True))
    np.testing.assert_allclose(out["prediction"].to_numpy()[[0, 2]], expected)
    # conditions matter: more cycles, same material -> a different answer
    assert expected[0] != retention.model.predict(good.assign(cycles=[1000.0, 300.0]))[0]


def test_predict_one_and_empty_frame(retention: Predictor) -> None:
    p = retention.predict_one({"formula": "O3-NaNi0.33Fe0.33Mn0.33O2", "cycles": 100})
    assert p.lower_90 <= p.value <= p.upper_90 and p.unit == "%"
    with pytest.raises(ValueError, match="cycles is required"):
        retention.predict_one({"formula": "NaMnO2"})
    empty = retention.predict_frame(pd.DataFrame({"formula": []}))
    assert empty.empty and list(empty.columns) == list(OUTPUT_COLUMNS)
    with pytest.raises(ValueError, match="no 'formula' column"):
        retention.predict_frame(pd.DataFrame({"composition": ["NaMnO2"]}))


def test_served_values_stay_within_the_physical_range(retention: Predictor) -> None:
    """A wide conformal interval is clipped to the target's range (retention 0-105 %), never 108 %."""
    low, high = TARGETS[TargetName.CAPACITY_RETENTION].value_range or (None, None)
    df = pd.DataFrame(
        {
            "formula": ["Na0.67Mn0.67Ni0.33O2", "P2-Na0.6Li0.2Mn0.7Ru0.1O2", "NaFe0.5Mn0.5O2"],
            "cycles": [1.0, 2.0, 5000.0],
        }
    )
    raw = retention.model.predict_with_uncertainty(df)
    assert (raw["upper_90"] > high).any(), "the fixture model should produce an interval past 105 %"
    out = retention.predict_frame(df)
    bounds = out[["prediction", "lower_90", "upper_90"]].to_numpy()
    assert (bounds >= low).all() and (bounds <= high).all()
    inside = (raw["upper_90"] <= high) & (raw["lower_90"] >= low)
    np.testing.assert_allclose(out.loc[inside, "upper_90"], raw.loc[inside, "upper_90"])
    assert (out["upper_90"] == np.minimum(raw["upper_90"], high)).all()


def test_repeated_rows_are_answered_once_with_the_answer_of_each_row(retention: Predictor) -> None:
    """Deduplication changes no answer: a batch with repeats (bad rows among them) equals the same batch
    answered without it: flags, reasons, errors and versions exactly, numbers to 1e-13 relative. Numbers
    are not compared bit for bit because the path without deduplication is not row-independent itself:
    the model's matrix products round a row by its position in the batch, so one input repeated in one
    batch came out up to 1 ulp apart (rows 2 and 38 below, measured); with deduplication all repeats of
    an input get one answer."""
    formulas = ["Na0.67Mn0.67Ni0.33O2", "P2-Na0.6Li0.2Mn0.7Ru0.1O2", "NaHfCl6", "Na2XyO3"]
    df = pd.DataFrame(
        {
            "formula": [formulas[i % 4] for i in range(40)],
            "cycles": [100.0 if i % 3 else 200.0 for i in range(40)],
            "current_mA_g": [20.0 if i % 5 else np.nan for i in range(40)],
        },
        index=np.arange(100, 140),
    )
    reference = Predictor(retention.target, retention.model, retention.model_version, deduplicate=False)
    got = retention.predict_frame(df, raw=True)
    for want in (
        reference.predict_frame(df, raw=True),
        pd.concat([reference.predict_frame(df.iloc[[i]], raw=True) for i in range(len(df))]),
    ):
        pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-13, atol=0.0)
        for col in ("in_domain", "domain_reason", "model_version", "error"):
            assert got[col].tolist() == want[col].tolist()
    inputs = df["formula"] + df["cycles"].astype(str) + df["current_mA_g"].astype(str)
    repeats = got.groupby(inputs)
    assert (repeats["prediction"].nunique(dropna=False) == 1).all()  # one answer per distinct input


def test_a_frame_indexed_by_position_is_read_in_place_and_answered_as_any_other(retention: Predictor) -> None:
    """A 0..n-1 frame goes to the model without the reset_index copy: it is left unchanged, and its
    answers equal those of the same rows under another index (the copy's path), cell for cell."""
    rows = pd.DataFrame(
        {"formula": ["Na0.67Mn0.67Ni0.33O2", "Na2XyO3", "NaNi0.5Mn0.5O2"], "cycles": [50.0, 50.0, 300.0]}
    )
    before = rows.copy()
    direct = retention.predict_columns(rows)
    shifted = retention.predict_columns(rows.set_axis([10, 4, 7]))
    reversed_range = retention.predict_columns(rows.set_axis(pd.RangeIndex(2, -1, -1)))
    pd.testing.assert_frame_equal(rows, before)
    for other in (shifted, reversed_range):
        for column in OUTPUT_COLUMNS:
            np.testing.assert_array_equal(np.asarray(direct[column]), np.asarray(other[column]))
