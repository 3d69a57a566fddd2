"""The Predictor's serving path (the input columns handed to the feature transformers without frames, the
routed forests' input taken without sklearn's re-check, the study-aware forest's trees walked as the plain
forests' are) answers exactly what the general path answers: sklearn's own ``Pipeline.transform`` on the
prepared DataFrame, sklearn's input checks before every regressor, sklearn's tree and forest ``predict``.
Compared on a corpus of good and bad rows for a small model of each target, shaped like its champion
(conductivity: Na-routed extra trees with the non-oxide framework flag, Mondrian intervals and polyanion
classes; retention: the study-aware forest with its residual-scale forest; voltage: a plain forest), every
output column: values bit for bit, NaN in the same places, dtypes, errors; and each row alone as in the
batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import ExtraTreesRegressor
from sklearn.pipeline import Pipeline

import models.estimators.spread as spread
import models.uncertain as uncertain
from models.data.loader import load_curated
from models.predictor import OUTPUT_COLUMNS, RAW_OUTPUTS, Predictor
from models.targets import TargetName
from models.training import Candidate, TrainingConfig, default_candidates, fit_uncertain, training_frame
from models.transfer import IonRoutedRegressor, framework_column, ion_fraction_columns

DATA_DIR = Path(__file__).resolve().parents[2] / "data"

pytestmark = pytest.mark.slow  # fits a small model per target on the curated data (~15 s)

#: Per target: rows that predict (with and without conditions, polymorph prefixes, phases, working ions)
#: and rows that must fail with their reason (bad element, negative amount, bad conditions, unknown phase)
CORPUS: dict[TargetName, list[dict[str, object]]] = {
    TargetName.IONIC_CONDUCTIVITY: [
        {"formula": "Na3Zr2Si2PO12"},
        {"formula": "Na3.4Zr2Si2.4P0.6O12", "phase": "crystalline"},
        {"formula": "Na3Zr1.9Hf0.1Si2PO12", "phase": "Glass-ceramic"},
        {"formula": "Na2ZrCl6", "phase": "glass"},
        {"formula": "Li7La3Zr2O12"},
        {"formula": "Na3PS4", "phase": None},
        {"formula": "NaAl11O17", "phase": ""},
        {"formula": "Na2B12H12"},
        {"formula": "Na3Zr2Si2PO12"},  # a repeat
        {"formula": "Na2XyO3"},  # unknown element
        {"formula": "Na-1ZrO3"},  # negative amount
        {"formula": "Na3PS4", "phase": "plasma"},  # unknown phase
        {"formula": ""},
        {"formula": None},
        {"formula": 12.5},
    ],
    TargetName.CAPACITY_RETENTION: [
        {"formula": "P2-Na0.67MnO2", "cycles": 100, "current_mA_g": 20, "voltage_low_V": 2.0,
         "voltage_high_V": 4.0},
        {"formula": "P2-Na0.67Mn0.8Ni0.2O2", "cycles": 50},
        {"formula": "NaNi0.5Mn0.5O2", "cycles": "200", "structure_type": "O3", "current_mA_g": None},
        {"formula": "Na0.67Ni0.33Mn0.67O2", "cycles": 0, "voltage_high_V": 4.3},
        {"formula": "NaNi0.5Mn0.5O2", "cycles": -5},  # negative cycles
        {"formula": "NaMnO2"},  # cycles missing
        {"formula": "NaMnO2", "cycles": "many"},  # not a number
        {"formula": "NaMnO2", "cycles": float("inf")},
        {"formula": "NaMnQ2", "cycles": 10},  # unknown element
        {"formula": "P2-Na0.67MnO2", "cycles": 100, "current_mA_g": 20, "voltage_low_V": 2.0,
         "voltage_high_V": 4.0},  # a repeat
    ],
    TargetName.AVERAGE_VOLTAGE: [
        {"formula": "NaMnO2"},
        {"formula": "NaFePO4", "working_ion": "Na"},
        {"formula": "LiCoO2", "working_ion": "Li"},
        {"formula": "NaNi0.5Mn0.5O2", "working_ion": " Na "},
        {"formula": "MnO2"},  # no working ion in the formula
        {"formula": "NaMnO2", "working_ion": "Xe"},  # unknown working ion
        {"formula": "Na2Zz"},
    ],
}  # fmt: skip


def _candidate(target: TargetName) -> Candidate:
    if target is TargetName.IONIC_CONDUCTIVITY:
        na_col, li_col = ion_fraction_columns("magpie_v1")
        forest = ExtraTreesRegressor(n_estimators=12, min_samples_leaf=2, max_features=0.3, random_state=0)
        routed = IonRoutedRegressor(
            forest, na_col, li_col, min_rows=5, framework_column=framework_column("magpie_v1")
        )
        return Candidate("extra_trees_ion_routed", "magpie_v1", routed, transfer="framework")
    return default_candidates(target, quick=True, n_jobs=1)[0]


@pytest.fixture(scope="module", params=list(TargetName), ids=lambda t: t.value)
def predictor(request: pytest.FixtureRequest) -> Predictor:
    target = request.param
    X, y, groups, _, _ = training_frame(target, load_curated(target, DATA_DIR))
    model = fit_uncertain(target, _candidate(target), X, y, groups, TrainingConfig(quick=True, n_splits=3))
    return Predictor(target=target, model=model, model_version="7")


def _general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reference: sklearn's ``Pipeline.transform`` on the prepared frame, sklearn's input checks, each
    tree's own ``predict`` and the residual-scale forest's ``predict``."""
    monkeypatch.setattr(uncertain, "transform_steps", lambda steps, X: Pipeline(list(steps)).transform(X))
    monkeypatch.setattr(spread, "plain_finite_input", lambda est, X: False)
    monkeypatch.setattr(
        spread, "forest_per_tree", lambda forest, X: np.stack([t.predict(X) for t in forest.estimators_])
    )
    monkeypatch.setattr(spread, "forest_predict", lambda regressor, X: np.asarray(regressor.predict(X)))


def _assert_same(got: pd.DataFrame, want: pd.DataFrame, rtol: float = 0.0) -> None:
    assert list(got.columns) == list(want.columns)
    assert got.index.equals(want.index)
    for col in want.columns:
        assert got[col].dtype == want[col].dtype, col
        a, b = got[col].to_numpy(), want[col].to_numpy()
        if a.dtype == np.float64:
            np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=col)
            if rtol:
                np.testing.assert_allclose(a, b, rtol=rtol, atol=0.0, err_msg=col)
            else:
                assert a.tobytes() == b.tobytes(), col  # bit for bit (-0.0 is not 0.0)
        else:
            assert a.tolist() == b.tolist(), col
            assert [type(v) for v in a] == [type(v) for v in b], col


def test_serving_path_equals_the_general_path(predictor: Predictor, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = pd.DataFrame(CORPUS[predictor.target], index=np.arange(100, 100 + len(CORPUS[predictor.target])))
    rows = [corpus.iloc[[i]] for i in range(len(corpus))]
    got = predictor.predict_frame(corpus, raw=True)
    got_rows = [predictor.predict_frame(row, raw=True) for row in rows]
    got_columns = predictor.predict_columns(corpus.iloc[[0]].reset_index(drop=True))
    _general_path(monkeypatch)
    want = predictor.predict_frame(corpus, raw=True)
    assert list(want.columns) == [*OUTPUT_COLUMNS, *RAW_OUTPUTS]
    assert want["error"].astype(bool).any() and not want["error"].astype(bool).all()  # both kinds of row
    _assert_same(got, want)
    for row, got_row in zip(rows, got_rows, strict=True):
        _assert_same(got_row, predictor.predict_frame(row, raw=True))
        # a row alone is answered as in the batch, to the last bits of the spread: a forest's few rows are
        # walked all trees at once and the per-tree values reduced in another order (models/estimators/
        # spread.py, before this path too)
        _assert_same(got_row, want.loc[row.index], rtol=1e-12)
    want_columns = predictor.predict_columns(corpus.iloc[[0]].reset_index(drop=True))
    assert list(got_columns) == list(want_columns)
    for col, values in want_columns.items():
        assert type(got_columns[col]) is type(values), col
        assert np.asarray(got_columns[col]).tobytes() == np.asarray(values).tobytes(), col


def test_a_model_input_sklearn_refuses_gets_sklearns_error(predictor: Predictor) -> None:
    """The routed/forest regressors take sklearn's check for anything but a plain finite float array."""
    regressor = predictor.model.estimator_[-1]
    z = predictor.model.estimator_[:-1].transform(pd.DataFrame(CORPUS[predictor.target][:1]))
    bad = z.copy()
    bad[0, 0] = np.nan
    assert not spread.plain_finite_input(regressor, bad)
    assert not spread.plain_finite_input(regressor, z[:, :-1])
    assert spread.plain_finite_input(regressor, z) == (not hasattr(regressor, "feature_names_in_"))
    with pytest.raises(ValueError):
        spread.predict_mean_std(regressor, z[:, :-1])
    mean, std = spread.predict_mean_std(regressor, z)
    mean_ref, std_ref = spread.predict_mean_std(regressor, z.tolist())  # a list: sklearn's check
    assert mean.tobytes() == mean_ref.tobytes()
    assert (std is None) == (std_ref is None) and (std is None or std.tobytes() == std_ref.tobytes())
