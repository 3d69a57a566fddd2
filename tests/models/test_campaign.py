"""What a campaign's measurements teach the models (``models.campaign``), on a real quick retention
champion in a store of this module's own: rows for the curated table, the lab offset against hand-computed
numbers, the anchored score table, and the refit registered as ``campaign-<name>`` with ``@champion``
left where it was."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.campaign import (
    MIN_REFIT_ROWS,
    STD_PRIOR_ROWS,
    alias_name,
    campaign_group,
    campaign_rows,
    lab_offset,
    load_campaign_model,
    one_anchor_weight,
    refit_and_register,
)
from models.measurements import Measurement
from models.predictor import Predictor
from models.relative import anchor_weight
from models.targets import TargetName
from screening.campaign import anchor_scores
from screening.schema import Field, column

pytestmark = [pytest.mark.mlflow, pytest.mark.slow]

T = TargetName.CAPACITY_RETENTION
DATA_DIR = Path(__file__).resolve().parents[2] / "data"
CONDITIONS = {"cycles": 100.0, "current_mA_g": 20.0, "voltage_low_V": 2.0, "voltage_high_V": 4.2}
LAB = ["Na0.67Mn0.67Ni0.33O2", "Na0.67Mn0.6Ni0.3Ti0.1O2", "NaNi0.5Mn0.5O2", "NaFe0.5Mn0.5O2"]
MORE = ["Na0.67Mn0.6Ni0.3Mg0.1O2", "Na0.67Mn0.6Ni0.3Cu0.1O2", "NaNi0.45Mn0.45Ti0.1O2"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(tracking URI, champion version) of a quick retention champion."""
    from models import tracking
    from models.champion import train_log_register
    from models.training import TrainingConfig

    uri = tracking.default_tracking_uri(tmp_path_factory.mktemp("campaign-models"))
    config = TrainingConfig(quick=True, n_splits=3, studies=False)
    champion = train_log_register(T, DATA_DIR, config, tracking_uri=uri, with_tables=False)
    return uri, champion.version


@pytest.fixture(scope="module")
def predictor(store: tuple[str, str]) -> Predictor:
    from models.tracking import load_champion

    model, version = load_champion(T, store[0])
    return Predictor(target=T, model=model, model_version=version)


def _raw_mean(predictor: Predictor, formulas: list[str]) -> np.ndarray:
    frame = pd.DataFrame([{"formula": f, **CONDITIONS} for f in formulas])
    return np.asarray(predictor.model.predict(frame), dtype=float)


def _lab(predictor: Predictor, formulas: list[str], shift: float) -> list[Measurement]:
    """What a lab that measures ``shift`` points above the model reports."""
    values = np.clip(_raw_mean(predictor, formulas) + shift, 0.0, 100.0)
    return [
        Measurement(formula=f, target=T, value=float(v), conditions=CONDITIONS, round=1)
        for f, v in zip(formulas, values, strict=True)
    ]


def test_names_and_groups_refuse_what_would_not_be_an_alias() -> None:
    assert alias_name("p2-ru_2026") == "campaign-p2-ru_2026"
    assert campaign_group("p2") == "campaign:p2"
    for bad in ("", "two words", "a/b", "x" * 61, "champion!"):
        with pytest.raises(ValueError, match="campaign name"):
            alias_name(bad)


def test_anchor_weight_is_the_random_effects_share() -> None:
    assert anchor_weight(0, 0.4) == 0.0 and anchor_weight(3, 0.0) == 0.0
    assert anchor_weight(1, 0.4) == pytest.approx(0.4)
    assert anchor_weight(3, 0.4) == pytest.approx(3 * 0.4 / (1 + 2 * 0.4))
    weights = [anchor_weight(n, 0.3) for n in range(1, 40)]
    assert all(a < b for a, b in itertools.pairwise(weights)) and weights[-1] < 1.0


def test_campaign_rows_are_rows_of_the_curated_table() -> None:
    measured = [
        Measurement(formula="NaNi0.5Mn0.5O2", target=T, value=81.5, conditions=CONDITIONS, round=2),
        Measurement(formula="Na3Zr2Si2PO12", target=TargetName.IONIC_CONDUCTIVITY, value=-3.2),
    ]
    rows = campaign_rows(T, measured, campaign="lab1")
    assert len(rows) == 1  # the conductivity row belongs to another table
    row = rows.iloc[0]
    assert row["formula"] == "NaNi0.5Mn0.5O2" and row["retention_pct"] == 81.5
    assert row["doi"] == "campaign:lab1" and not row["censored"] and row["round"] == 2
    assert row["cycles"] == 100.0 and row["voltage_high_V"] == 4.2


def test_lab_offset_is_the_shrunken_mean_residual(predictor: Predictor) -> None:
    k1, source = one_anchor_weight(predictor.model)
    assert 0.0 <= k1 <= 1.0 and source
    none = lab_offset(predictor, [], T)
    assert none.n == 0 and none.offset == 0.0 and none.std_scale == 1.0
    measured = _lab(predictor, LAB, shift=-12.0)
    lab = lab_offset(predictor, measured, T)
    residual = np.array([m.value for m in measured]) - _raw_mean(predictor, LAB)
    k = anchor_weight(len(LAB), k1)
    assert lab.n == len(LAB) and lab.shrinkage == pytest.approx(k)
    assert lab.mean_residual == pytest.approx(residual.mean())
    assert lab.offset == pytest.approx(k * residual.mean())
    assert lab.offset < 0  # the lab measures below the model: predictions move down
    # every row shifted alike: each left-out row is predicted by the others' shrunken mean, so the
    # measured interval scale is what those leave-one-out residuals say, blended with the prior rows
    _, std = predictor.predict_frame(pd.DataFrame([{"formula": f, **CONDITIONS} for f in LAB]))[
        ["prediction", "std"]
    ].T.to_numpy()
    n = len(LAB)
    loo = residual - anchor_weight(n - 1, k1) * (residual.sum() - residual) / (n - 1)
    ratio2 = float(np.mean(loo**2) / np.mean(np.asarray(std, float) ** 2))
    expected = np.sqrt((n * ratio2 + STD_PRIOR_ROWS) / (n + STD_PRIOR_ROWS))
    assert lab.std_scale == pytest.approx(float(np.clip(expected, 0.3, 3.0)))


def test_a_measured_row_the_predictor_refuses_is_named(predictor: Predictor) -> None:
    bad = Measurement(formula="NaCl", target=T, value=50.0, conditions={"cycles": -5.0})
    with pytest.raises(ValueError, match="NaCl"):
        lab_offset(predictor, [bad], T)


def test_anchor_scores_moves_predictions_and_scales_intervals(predictor: Predictor) -> None:
    frame = pd.DataFrame([{"formula": f, **CONDITIONS} for f in MORE])
    answer = predictor.predict_frame(frame)
    scored = pd.DataFrame(
        {
            "formula": MORE,
            column(T, Field.PREDICTION): answer["prediction"].to_numpy(float),
            column(T, Field.STD): answer["std"].to_numpy(float),
            column(T, Field.LOWER_90): answer["lower_90"].to_numpy(float),
            column(T, Field.UPPER_90): answer["upper_90"].to_numpy(float),
            column(T, Field.IN_DOMAIN): answer["in_domain"].to_numpy(bool),
        }
    )
    measured = _lab(predictor, LAB, shift=-12.0)
    anchored = anchor_scores(scored, {T: predictor}, measured)
    lab = lab_offset(predictor, measured, T)
    assert anchored.attrs["lab_offsets"][T.value]["offset"] == pytest.approx(lab.offset)
    pred = scored[column(T, Field.PREDICTION)].to_numpy(float)
    new = anchored[column(T, Field.PREDICTION)].to_numpy(float)
    np.testing.assert_allclose(new, np.clip(pred + lab.offset, 0, 100))
    half_before = scored[column(T, Field.UPPER_90)] - scored[column(T, Field.PREDICTION)]
    half_after = anchored[column(T, Field.UPPER_90)] - anchored[column(T, Field.PREDICTION)]
    inside = (anchored[column(T, Field.UPPER_90)] < 100).to_numpy()
    np.testing.assert_allclose(half_after[inside], (half_before * lab.std_scale)[inside], rtol=1e-9)
    assert (anchored["formula"] == scored["formula"]).all()
    # no measurement of the target: the table comes back unchanged
    untouched = anchor_scores(scored, {T: predictor}, [])
    pd.testing.assert_frame_equal(untouched, scored)


def test_refit_registers_campaign_alias_and_leaves_champion(store: tuple[str, str]) -> None:
    from models.tracking import champion_version, register_alias

    uri, champion = store
    from models.tracking import load_champion

    model, _ = load_champion(T, uri)
    base = Predictor(target=T, model=model, model_version=champion)
    few = _lab(base, LAB[: MIN_REFIT_ROWS - 1], shift=-25.0)
    with pytest.raises(ValueError, match=f"at least {MIN_REFIT_ROWS}"):
        refit_and_register(T, few, campaign="lab-few", tracking_uri=uri, data_dir=DATA_DIR)
    with pytest.raises(LookupError, match="campaign-lab-few"):
        load_campaign_model(T, "lab-few", uri)

    measured = _lab(base, LAB + MORE, shift=-25.0)
    refit = refit_and_register(T, measured, campaign="lab-a", tracking_uri=uri, data_dir=DATA_DIR)
    assert refit.alias == "campaign-lab-a" and refit.n_rows == len(measured)
    assert refit.base_version == champion and refit.version != champion
    assert champion_version(T, uri) == champion, "a campaign moved @champion"
    loaded, version = load_campaign_model(T, "lab-a", uri)
    assert version == refit.version
    assert refit.metrics["campaign_rows"] == len(measured)
    from models.data.loader import load_curated
    from models.training import training_frame

    n_base = len(training_frame(T, load_curated(T, DATA_DIR))[1])
    assert len(loaded.oof_) == n_base + len(measured), "the refit did not learn from base + campaign rows"
    assert refit.metrics["cv_mae"] > 0 and refit.metrics["dummy_mae"] > 0
    assert np.isfinite(refit.metrics["campaign_heldout_mae"])
    # the refit learnt the lab's rows: its predictions of them moved towards what was measured
    values = np.array([m.value for m in measured])
    before = np.abs(_raw_mean(base, LAB + MORE) - values).mean()
    after_model = Predictor(target=T, model=loaded, model_version=version)
    after = np.abs(_raw_mean(after_model, LAB + MORE) - values).mean()
    assert after < before
    with pytest.raises(ValueError, match="champion"):
        register_alias(tracking_uri=uri, target=T, logged=None, alias="champion")  # type: ignore[arg-type]


def _p2_space(predictor: Predictor) -> tuple[pd.DataFrame, np.ndarray]:
    """(score table, Ti fraction) of Ti, Ru and Zr on the Mn site of Na0.6Li0.2Mn0.8O2, fractions 0.02-0.2."""
    rows = [(d, x) for d in ("Ti", "Ru", "Zr") for x in np.round(np.arange(1, 11) * 0.02, 4)]
    formulas = [f"Na0.6Li0.2Mn{round(0.8 - x, 4)}{d}{x}O2" for d, x in rows]
    frame = pd.DataFrame([{"formula": f, **CONDITIONS} for f in formulas])
    answer = predictor.predict_frame(frame)
    for f in (Field.PREDICTION, Field.STD, Field.LOWER_90, Field.UPPER_90, Field.IN_DOMAIN):
        frame[column(T, f)] = answer[f.value].to_numpy()
    return frame, np.array([x if d == "Ti" else 0.0 for d, x in rows])


def test_local_gp_learns_the_labs_trend_and_changes_the_proposals(predictor: Predictor) -> None:
    from screening.campaign import (
        MIN_LOCAL_ROWS,
        AcquisitionConfig,
        CampaignObjective,
        local_scores,
        propose_batch,
    )

    scored, x_ti = _p2_space(predictor)
    raw = _raw_mean(predictor, scored["formula"].tolist())
    lab_values = np.clip(raw - 15.0 + 100.0 * x_ti, 0.0, 100.0)  # this lab: lower, and Ti helps
    seen = [0, 4, 8, 10, 14, 18]  # Ti and Ru at 0.02, 0.10, 0.18
    measured = [
        Measurement(
            formula=scored["formula"].iat[i], target=T, value=float(lab_values[i]), conditions=CONDITIONS
        )
        for i in seen
    ]
    assert len(measured) > MIN_LOCAL_ROWS
    few = local_scores(scored, {T: predictor}, measured[: MIN_LOCAL_ROWS - 1])
    pd.testing.assert_series_equal(
        few[column(T, Field.PREDICTION)],
        anchor_scores(scored, {T: predictor}, measured[: MIN_LOCAL_ROWS - 1])[column(T, Field.PREDICTION)],
    )
    assert (
        "lab offset" in few["scored_by"].iat[0]
        and f"local GP from {MIN_LOCAL_ROWS}" in few["scored_by"].iat[0]
    )
    local = local_scores(scored, {T: predictor}, measured)
    assert f"local GP on {len(measured)} lab residuals" in local["scored_by"].iat[0]
    gain = local[column(T, Field.PREDICTION)].to_numpy(float) - scored[column(T, Field.PREDICTION)].to_numpy(
        float
    )
    # the planted trend: along the Ti series the GP's correction rises; at the same fraction Ti beats Ru
    assert pd.Series(gain[:10]).corr(pd.Series(x_ti[:10]), method="spearman") > 0.9
    assert gain[8] - gain[18] > 8.0, (gain[8], gain[18])
    assert np.all(local[column(T, Field.STD)].to_numpy(float)[seen] < local[column(T, Field.STD)].max())
    objective = [CampaignObjective(target=T, direction="max")]
    before = propose_batch(few, measured[: MIN_LOCAL_ROWS - 1], objective, AcquisitionConfig(), 4, seed=1)
    after = propose_batch(local, measured, objective, AcquisitionConfig(), 4, seed=1)
    assert list(before.table["formula"]) != list(after.table["formula"])
    assert not set(after.table["formula"]) & {m.formula for m in measured}
    assert all("scored by capacity_retention" in r and "local GP" in r for r in after.table["reason"])
    top = after.table["formula"].iat[0]
    assert "Ti" in top, after.table[["formula", "reason"]]
