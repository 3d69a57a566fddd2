"""Screening relative to a reference (issue 8): the spec's ``reference`` and ``anchors``, ranking by the
change vs the host (``by: delta``) or P(better) (``by: p_better``), the host row as the 0 line, and
per-candidate delta intervals, with a real trained retention model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from models.predictor import load_predictors
from models.targets import TargetName
from screening.ranking import parse_ranking, rank
from screening.report import top_table
from screening.runner import SpecChunkScorer
from screening.schema import RELATIVE_FIELDS, Field, column, relative_columns, result_columns
from screening.session import check_anchors
from screening.spec import SpecError, parse_spec
from screening.spec_io import load_spec

HOST = "Na0.6Li0.2Mn0.8O2"
PROTOCOL = {"cycles": 100, "current_mA_g": 170, "voltage_low_V": 2.0, "voltage_high_V": 4.5}
P2: dict[str, Any] = {
    "name": "p2_relative",
    "family": "p2_layered_oxide",
    "targets": ["capacity_retention"],
    "host": HOST,
    "site": "Mn",
    "dopants": ["Ru", "Ti", "Sn", "Zr", "Nb", "Fe"],
    "fractions": [0.05, 0.1, 0.15],
    "compensation": {"mode": "variable_valence", "element": "Mn", "range": [3, 4]},
    "conditions": PROTOCOL,
}
RET = "capacity_retention"


# ------------------------------------------------------------------------------------------ spec parsing
def test_reference_defaults_to_the_host_and_can_be_named() -> None:
    assert parse_spec(P2).reference == HOST
    other = parse_spec({**P2, "reference": "Na0.6Li0.2Mn0.7Ru0.1O2"})
    assert other.reference == "Na0.6Li0.2Mn0.7Ru0.1O2"
    assert "Na0.6Li0.2Mn0.7Ru0.1O2" in other.ranking.reference
    with pytest.raises(SpecError, match=r"^reference: 'Na2XyO3'"):
        parse_spec({**P2, "reference": "Na2XyO3"})


def test_anchor_forms_and_their_errors() -> None:
    row = {"formula": HOST, "cycles": 200, "measured": 45.5}
    one = parse_spec({**P2, "anchors": [row]})
    assert [(a.target, a.measured, a.cycles) for a in one.anchors] == [
        (TargetName.CAPACITY_RETENTION, 45.5, 200)
    ]
    # conditions the row leaves out are the spec's
    (filled,) = one.anchor_rows(TargetName.CAPACITY_RETENTION)
    assert filled["cycles"] == 200 and filled["current_mA_g"] == 170 and filled["measured"] == 45.5
    both = {**P2, "targets": None}
    both = {k: v for k, v in both.items() if v is not None}
    with pytest.raises(SpecError, match=r"anchors\[0\]\.target: required"):
        parse_spec({**both, "anchors": [row]})
    assert len(parse_spec({**both, "anchors": {RET: [row]}}).anchors) == 1
    for bad, where in [
        ([{"formula": HOST}], r"anchors\[0\]\.measured: required"),
        ([{"formula": HOST, "measured": "lots"}], r"anchors\[0\]\.measured: 'lots' is not a number"),
        ([{"formula": "Na2XyO3", "measured": 40}], r"anchors\[0\]\.formula: 'Na2XyO3'"),
        ([{"formula": HOST, "measured": 40, "cycles": -5}], r"anchors\[0\]\.cycles: must be > 0"),
        ([{"formula": HOST, "measured": 40, "target": "average_voltage"}], r"anchors\[0\]\.target"),
        ([row] * 101, "anchors: more than 100 rows"),
        ([], "anchors: empty"),
        ("anchors.csv", "read next to a spec file"),  # a request body cannot name server files
    ]:
        with pytest.raises(SpecError, match=where):
            parse_spec({**P2, "anchors": bad})


def test_an_anchor_file_is_read_relative_to_the_spec(tmp_path: Path) -> None:
    import yaml

    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "measured.csv").write_text(
        "formula,cycles,current_mA_g,measured\nNa0.6Li0.2Mn0.8O2,200,,45.5\nNa0.6Li0.2Mn0.7Ru0.1O2,200,170,81.2\n"
    )
    spec_file = tmp_path / "p2.yaml"
    spec_file.write_text(yaml.safe_dump({**P2, "anchors": "lab/measured.csv"}))
    spec = load_spec(spec_file)
    assert [a.measured for a in spec.anchors] == [45.5, 81.2]
    assert spec.anchors[0].current_mA_g is None  # an empty cell: the spec's conditions apply
    spec_file.write_text(yaml.safe_dump({**P2, "anchors": {RET: "lab/missing.csv"}}))
    with pytest.raises(SpecError, match=r"missing\.csv: no such file"):
        load_spec(spec_file)


def test_ranking_by_is_checked() -> None:
    targets = [TargetName.CAPACITY_RETENTION]
    assert parse_ranking({"by": "delta"}, targets).objectives[0].by == "delta"
    for bad, where in [
        ({"by": "change"}, "by: 'change'"),
        ({"objectives": {RET: {"by": "p_better", "direction": "min"}}}, "maximised"),
        ({"objectives": {RET: {"by": "p_better", "max_std": 2}}}, "no std"),
    ]:
        with pytest.raises(ValueError, match=where):
            parse_ranking(bad, targets)
    assert set(relative_columns(RET)) <= set(result_columns([RET]))


# ------------------------------------------------------------------------------- ranking on the columns
def _scored(p_better: list[float], delta: list[float], std: list[float]) -> pd.DataFrame:
    n = len(delta)
    frame = pd.DataFrame(
        {
            "formula": [f"c{i}" for i in range(n)],
            "is_host": [i == 0 for i in range(n)],
            column(RET, Field.PREDICTION): np.linspace(50, 60, n),
            column(RET, Field.STD): np.full(n, 5.0),
            column(RET, Field.ERROR): [""] * n,
            column(RET, Field.DELTA): delta,
            column(RET, Field.DELTA_STD): std,
            column(RET, Field.P_BETTER): p_better,
            column(RET, Field.RELATIVE_ERROR): [""] * n,
        }
    )
    frame.loc[3, column(RET, Field.DELTA)] = np.nan
    frame.loc[3, column(RET, Field.P_BETTER)] = np.nan
    frame.loc[3, column(RET, Field.RELATIVE_ERROR)] = "reference 'X': no cycles"
    return frame


def test_rank_by_p_better_and_by_delta_use_those_columns() -> None:
    scored = _scored([0.5, 0.9, 0.6, 0.7, 0.95], [0.0, 4.0, 9.0, 1.0, 3.0], [1.0, 2.0, 20.0, 1.0, 1.0])
    config = parse_ranking({"by": "p_better"}, [TargetName.CAPACITY_RETENTION])
    ranked = rank(scored, config)
    assert ranked["formula"].tolist()[:4] == ["c4", "c1", "c2", "c0"]  # p_better descending
    excluded = ranked[~ranked["eligible"]]
    assert excluded["formula"].tolist() == ["c3"]
    assert "no capacity_retention P(better): reference 'X'" in excluded["excluded_reason"].iloc[0]
    by_delta = rank(scored, parse_ranking({"by": "delta"}, [TargetName.CAPACITY_RETENTION]))
    assert by_delta["formula"].tolist()[:4] == ["c2", "c1", "c4", "c0"]
    # UCB on delta uses delta_std; EI's baseline is the host's delta (0)
    ucb = rank(scored, parse_ranking({"mode": "ucb", "by": "delta"}, [TargetName.CAPACITY_RETENTION]))
    assert ucb.loc[ucb["formula"] == "c2", column(RET, Field.SCORE)].iloc[0] == pytest.approx(29.0)
    ei = rank(scored, parse_ranking({"mode": "ei", "by": "delta"}, [TargetName.CAPACITY_RETENTION]))
    assert ei["formula"].iloc[0] == "c2"


# ---------------------------------------------------------------------------------- with a real model
@pytest.fixture(scope="module")
def retention(trained_retention_store: Any) -> Any:
    return load_predictors([TargetName.CAPACITY_RETENTION], trained_retention_store.tracking_uri)


def _ranked(spec: Any, predictors: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    from screening.candidates import count_candidates

    chunk = SpecChunkScorer(spec, predictors)(0, count_candidates(spec))
    return rank(chunk.scored, spec.ranking), chunk.scored


def test_a_screen_ranked_by_p_better_has_the_host_at_zero(retention: Any) -> None:
    anchors = {RET: [{"formula": HOST, "cycles": 200, "measured": 45.5}]}
    spec = parse_spec({**P2, "ranking": {"by": "p_better"}, "anchors": anchors})
    ranked, scored = _ranked(spec, retention)
    assert set(relative_columns(RET)) <= set(scored.columns)
    host = ranked[ranked["is_host"]].iloc[0]
    assert host[column(RET, Field.DELTA)] == pytest.approx(0.0, abs=1e-9)
    assert host[column(RET, Field.P_BETTER)] == pytest.approx(0.5)
    ok = ranked[ranked["eligible"]]
    p = ok[column(RET, Field.P_BETTER)].to_numpy()
    assert (np.diff(p) <= 1e-12).all() and p.max() > p.min()
    delta = ok[column(RET, Field.DELTA)]
    # the delta is the difference of the two absolute predictions under the spec's conditions
    diff = ok[column(RET, Field.PREDICTION)] - host[column(RET, Field.PREDICTION)]
    assert np.allclose(delta, diff, atol=1e-6)
    width = ok[column(RET, Field.DELTA_UPPER_90)] - ok[column(RET, Field.DELTA_LOWER_90)]
    assert width.round(6).nunique() > 1, "per-candidate delta intervals"
    anchored = ok[column(RET, Field.ANCHORED_PREDICTION)]
    assert np.isfinite(anchored).all() and not np.allclose(anchored, ok[column(RET, Field.PREDICTION)])
    # the top table carries the relative columns and the host's 0 line, flagged
    top = top_table(ranked, [RET], 3)
    assert {column(RET, f) for f in (Field.DELTA, Field.DELTA_LOWER_90, Field.P_BETTER)} <= set(top)
    assert top["is_host"].tolist()[-1] or top["is_host"].any()
    assert top.loc[top["is_host"], column(RET, Field.DELTA)].iloc[0] == pytest.approx(0.0, abs=1e-9)


def test_anchors_measured_under_other_conditions_offset_the_screen(retention: Any) -> None:
    at_200 = {"formula": HOST, "cycles": 200, "measured": 45.5}
    spec = parse_spec({**P2, "anchors": [at_200]})
    check_anchors(spec, retention)
    ranked, _ = _ranked(spec, retention)
    host = ranked[ranked["is_host"]].iloc[0]
    # the host predicted at 200 cycles is offset to 45.5; at the screen's 100 cycles it moves by k x that
    # offset (k fitted on held-out papers), so the anchored host differs from the plain prediction
    assert host[column(RET, Field.ANCHORED_PREDICTION)] != pytest.approx(host[column(RET, Field.PREDICTION)])
    lower, upper = host[column(RET, Field.ANCHORED_LOWER_90)], host[column(RET, Field.ANCHORED_UPPER_90)]
    assert lower <= host[column(RET, Field.ANCHORED_PREDICTION)] <= upper


def test_a_model_without_relative_calibration_leaves_a_reason(retention: Any) -> None:
    import copy

    predictor = copy.copy(retention[TargetName.CAPACITY_RETENTION])
    predictor.model = copy.copy(predictor.model)
    del predictor.model.relative_calibration_
    plain = {TargetName.CAPACITY_RETENTION: predictor}
    spec = parse_spec({**P2, "ranking": {"by": "delta"}})
    ranked, _ = _ranked(spec, plain)
    assert not ranked["eligible"].any()
    assert ranked["excluded_reason"].str.contains("no relative calibration").all()
    assert np.isfinite(ranked[column(RET, Field.PREDICTION)]).all()  # the absolute answers are there
    with pytest.raises(SpecError, match="no relative calibration"):
        check_anchors(parse_spec({**P2, "anchors": [{"formula": HOST, "measured": 45.5}]}), plain)
    assert all(f.value for f in RELATIVE_FIELDS)


def test_one_model_pass_equals_predicting_reference_and_anchors_on_their_own(retention: Any) -> None:
    """The scorer predicts the reference rows with the candidates and reads the anchors' raw mean from
    their one answer; the straightforward path predicts each apart (and the anchors twice)."""
    from models.predictor import predict_frame_raw
    from models.relative import AnchorOffset, _mean_spread, relative_values
    from screening.candidates import count_candidates
    from screening.scoring import INPUT_COLUMNS

    anchors = {RET: [{"formula": HOST, "cycles": 200, "measured": 45.5}]}
    spec = parse_spec({**P2, "ranking": {"by": "p_better"}, "anchors": anchors})
    predictor = retention[TargetName.CAPACITY_RETENTION]
    rows = pd.DataFrame(spec.anchor_rows(TargetName.CAPACITY_RETENTION))
    inputs_a = rows.drop(columns=["measured"])
    assert predictor.predict_frame(inputs_a)["error"].tolist() == [""]
    mean_a = _mean_spread(predictor.model, inputs_a)[0]  # a second model pass, as before
    want_offset = float(np.mean(rows["measured"].to_numpy(float) - mean_a))
    got = check_anchors(spec, retention)[TargetName.CAPACITY_RETENTION]
    assert got.n == 1 and got.offset == pytest.approx(want_offset, rel=1e-12, abs=1e-12)

    scored = SpecChunkScorer(spec, retention)(0, count_candidates(spec)).scored
    inputs = scored.loc[:, [c for c in INPUT_COLUMNS if c in scored.columns]]
    want = relative_values(
        predictor, inputs, predict_frame_raw(predictor, inputs), spec.reference, AnchorOffset(want_offset, 1)
    )
    for f in RELATIVE_FIELDS[:-1]:
        a, b = scored[column(RET, f)].to_numpy(float), want[f.value].to_numpy(float)
        assert np.allclose(a, b, rtol=1e-12, atol=1e-12, equal_nan=True), f
    assert scored[column(RET, Field.RELATIVE_ERROR)].tolist() == want["error"].tolist()
    assert np.isfinite(scored[column(RET, Field.P_BETTER)]).all()
