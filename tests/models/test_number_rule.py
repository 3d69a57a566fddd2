"""One rule for reading numeric inputs: validation (``row_errors``) and the model's inputs
(``prepare_inputs``) accept and refuse exactly the same values (issue 11.4: "1_000" and non-ASCII digits
passed validation and were then median-imputed)."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featurize.composition import parse_formulas
from models.features import parse_number, prepare_inputs, row_errors

TARGET = "capacity_retention"
PLAIN_DECIMAL = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*", re.ASCII)


@pytest.mark.parametrize(
    ("text", "value"),
    [("100", 100.0), (" 2.5 ", 2.5), ("-0.5", -0.5), (".5", 0.5), ("1e3", 1000.0), ("7.", 7.0)],
)
def test_plain_decimals_are_numbers(text: str, value: float) -> None:
    assert parse_number(text) == value


@pytest.mark.parametrize(
    "text", ["1_000", "\u0661\u0660\u0660", "\uff11\uff10", "0x10", "1,5", "1\x00", "", "ten", "1e", "--1"]
)
def test_other_text_is_not_a_number(text: str) -> None:
    with pytest.raises(ValueError, match="is not a number"):
        parse_number(text)


def test_bools_are_not_numbers() -> None:
    with pytest.raises(ValueError):
        parse_number(True)
    assert parse_number(np.float32(1.5)) == 1.5 and parse_number(3) == 3.0


def _validated_and_prepared(cycles: object) -> tuple[str, float]:
    frame = pd.DataFrame({"formula": ["NaMnO2"], "cycles": [cycles]})
    error = row_errors(TARGET, frame, parse_formulas(frame["formula"]))[0]
    return error, float(prepare_inputs(TARGET, frame)["cycles"].iloc[0])


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.text(max_size=8), st.from_regex(PLAIN_DECIMAL, fullmatch=True)))
def test_validation_and_model_inputs_agree(text: str) -> None:
    error, prepared = _validated_and_prepared(text)
    if not text.strip():
        assert error == "cycles is required" and math.isnan(prepared)
    elif PLAIN_DECIMAL.fullmatch(text):
        assert "not a number" not in error
        assert prepared == float(text)  # what passed validation is what the model reads
    elif text.strip().lower().lstrip("+-") in ("inf", "infinity", "nan"):
        assert "not finite" in error
    else:
        assert error == f"cycles={text!r} is not a number"
        assert math.isnan(prepared)  # refused by both, never a silently imputed "valid" row
