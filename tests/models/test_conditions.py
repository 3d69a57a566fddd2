"""models.conditions: the one table of battery test conditions and its boundary rule."""

from __future__ import annotations

import math

import pytest

from models.conditions import (
    CONDITION_COLUMNS,
    CONDITION_FIELDS,
    NUMERIC_CONDITIONS,
    check_condition,
    check_window,
    condition_field,
)
from models.features import input_spec
from models.targets import TargetName


def test_the_table_names_what_the_retention_model_reads() -> None:
    spec = input_spec(TargetName.CAPACITY_RETENTION)
    assert set(NUMERIC_CONDITIONS) == set(spec.numeric)
    assert CONDITION_COLUMNS[-1] == "working_ion"
    assert "working_ion" in input_spec("average_voltage").categorical
    assert all(f.maximum > 0 and f.unit and f.description for f in CONDITION_FIELDS)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("cycles", 0, "must be > 0"),
        ("cycles", -3, "must be > 0"),
        ("cycles", 2e6, r"at most 1e\+06 cycles"),
        ("voltage_high_V", 50, "at most 10 V"),
        ("current_mA_g", math.inf, "finite"),
        ("current_mA_g", math.nan, "finite"),
    ],
)
def test_a_condition_out_of_bounds_says_which_bound(name: str, value: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_condition(name, value)


def test_in_bounds_values_pass_unchanged() -> None:
    assert check_condition("cycles", 100) == 100.0
    assert check_condition("voltage_high_V", 10) == 10.0
    check_window(2.0, 4.5)
    check_window(None, 4.5)
    with pytest.raises(ValueError, match="below"):
        check_window(4.5, 4.5)
    with pytest.raises(KeyError, match="known: cycles"):
        condition_field("temperature_K")
