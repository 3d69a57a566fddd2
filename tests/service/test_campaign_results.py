"""Measured rows are validated like prediction inputs: a bad row carries its reason, the others go on."""

from __future__ import annotations

import pandas as pd
import pytest

from models.targets import TargetName
from service.campaigns.results import ResultsError, check_results

RET = [TargetName.CAPACITY_RETENTION]
SPEC_CONDITIONS = {"cycles": 100.0, "current_mA_g": 170.0, "voltage_low_V": 2.0, "voltage_high_V": 4.5}


def test_each_row_is_taken_or_refused_with_its_reason_in_order() -> None:
    frame = pd.DataFrame(
        {
            "formula": [
                "Na0.6Li0.2Mn0.7Ru0.1O2",
                "Na2XyO3",
                "Na0.6Li0.2Mn0.8O2",
                "Na0.6Li0.2Mn0.7Ir0.1O2",
                "",
                "NaMnO2",
            ],
            "capacity_retention": ["81.2", "70", "1_000", "140", "50", ""],
            "cycles": ["200", "", "", "", "", "-5"],
            "notes": ["a", "b", "c", "d", "e", "f"],
        }
    )
    rows, notes = check_results(frame, RET, SPEC_CONDITIONS)
    assert [r.row for r in rows] == [1, 2, 3, 4, 5, 6]
    good = rows[0]
    assert good.accepted and good.values == {"capacity_retention": 81.2}
    assert good.conditions["cycles"] == 200.0 and good.conditions["current_mA_g"] == 170.0  # spec default
    assert "unknown element Xy" in rows[1].error
    assert "capacity_retention='1_000' is not a number" in rows[2].error  # the one number rule
    assert "outside 0..105 %" in rows[3].error
    assert rows[4].error  # empty formula
    assert "cycles='-5' is negative" in rows[5].error or "no measured value" in rows[5].error
    assert all(not r.values for r in rows[1:])
    assert notes == ["column 'notes' is not used by this campaign and was ignored"]


def test_spec_conditions_fill_what_a_row_leaves_empty() -> None:
    frame = pd.DataFrame({"formula": ["P2-Na0.6Li0.2Mn0.8O2"], "capacity_retention": [45.5]})
    (row,), _ = check_results(frame, RET, SPEC_CONDITIONS)
    assert row.accepted and row.conditions["cycles"] == 100.0 and row.conditions["voltage_high_V"] == 4.5


def test_conductivity_rows_check_phase_and_non_finite_values() -> None:
    frame = pd.DataFrame(
        {
            "formula": ["Na3Zr2Si2PO12", "Na3Zr2Si2PO12", "NaN"],
            "ionic_conductivity": ["-3.3", "inf", "-9"],
            "phase": ["crystalline", "", "molten"],
        }
    )
    rows, _ = check_results(frame, [TargetName.IONIC_CONDUCTIVITY], {})
    assert rows[0].accepted and rows[0].conditions == {"phase": "crystalline"}
    assert "is not finite" in rows[1].error
    assert not rows[2].accepted and "phase" in rows[2].error  # NaN is sodium nitride; the phase is bad


def test_a_table_without_formula_or_value_column_is_refused_whole() -> None:
    with pytest.raises(ResultsError, match="'formula' column"):
        check_results(pd.DataFrame({"capacity_retention": [50]}), RET, {})
    with pytest.raises(ResultsError, match="capacity_retention"):
        check_results(pd.DataFrame({"formula": ["NaMnO2"], "measured": [50]}), RET, {})
