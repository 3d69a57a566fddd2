"""Battery test conditions, declared once: the numbers a cathode prediction is made under and the working
ion.

Every place that names or checks a condition derives it from ``CONDITION_FIELDS``: the screening spec form
(``screening.spec_forms.ConditionsForm``) and the spec's typed ``Conditions``, the candidate table
columns (``screening.schema.CONDITION_COLUMNS``), and the HTTP schemas (``service.api.schemas.conditions``
builds the fields of ``/v1/predict`` items and ``/v1/rank-dopants`` conditions from it). One rule at the
boundary: a given condition is a finite number > 0 and at most the field's ``maximum`` (a 10^7-cycle test
or a 50 V window is a typo, not a cell), and a voltage window has its low end below its high end.

The model's own row check (``models.features.row_errors``) stays more lenient on purpose: a CSV row of
measured data may say ``cycles = 0`` (retention 100% by definition); it refuses only what cannot be read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from models.targets import TargetName

__all__ = [
    "CONDITION_COLUMNS",
    "CONDITION_FIELDS",
    "DEFAULT_WORKING_ION",
    "NUMERIC_CONDITIONS",
    "WORKING_ION",
    "ConditionField",
    "check_condition",
    "check_window",
    "condition_field",
]

WORKING_ION = "working_ion"
DEFAULT_WORKING_ION = "Na"


@dataclass(frozen=True)
class ConditionField:
    """One numeric battery test condition: its column name, unit, what it means and its upper bound."""

    name: str
    unit: str
    description: str
    maximum: float
    targets: tuple[TargetName, ...] = (TargetName.CAPACITY_RETENTION,)


CONDITION_FIELDS: tuple[ConditionField, ...] = (
    ConditionField("cycles", "cycles", "capacity_retention: cycle number", 1e6),
    ConditionField("current_mA_g", "mA/g", "Cycling current, mA/g", 1e5),
    ConditionField("voltage_low_V", "V", "Lower cut-off voltage, V", 10.0),
    ConditionField("voltage_high_V", "V", "Upper cut-off voltage, V", 10.0),
)
#: The numeric condition columns, in the order every table carries them.
NUMERIC_CONDITIONS: tuple[str, ...] = tuple(f.name for f in CONDITION_FIELDS)
#: Every condition column of a candidate or an input row (the predictor's inputs besides the formula).
CONDITION_COLUMNS: tuple[str, ...] = (*NUMERIC_CONDITIONS, WORKING_ION)

_BY_NAME = {f.name: f for f in CONDITION_FIELDS}


def condition_field(name: str) -> ConditionField:
    """The field called ``name``; a KeyError lists the known ones."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown condition {name!r} (known: {', '.join(NUMERIC_CONDITIONS)})") from None


def check_condition(name: str, value: float) -> float:
    """``value`` as the condition ``name`` accepts it: finite, > 0 and <= the field's maximum; otherwise a
    ValueError saying which bound it breaks (the caller adds where the value came from)."""
    field = condition_field(name)
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"must be a finite number, got {value!r}")
    if out <= 0:
        raise ValueError(f"must be > 0, got {out:g}")
    if out > field.maximum:
        raise ValueError(f"must be at most {field.maximum:g} {field.unit}, got {out:g}")
    return out


def check_window(low: float | None, high: float | None) -> None:
    """A voltage window, when both ends are given, has its low end below its high end."""
    if low is not None and high is not None and low >= high:
        raise ValueError("voltage_low_V must be below voltage_high_V")
