"""Measured rows a lab sends back, validated like prediction inputs: each row is accepted or carries the
reason it was refused, and the other rows go on.

A results table has a ``formula`` column, one value column per objective target the row measured (named
by the target: ``capacity_retention``, ``ionic_conductivity``, ``average_voltage``; a row may leave a
target empty, but needs at least one value), and the condition columns of those targets
(``models.features.INPUT_SPECS``: ``cycles``, ``current_mA_g``, ``voltage_low_V``, ``voltage_high_V``,
``structure_type`` for retention, ``phase`` for conductivity, ``working_ion`` for voltage). A condition
the row leaves empty (or a column the table does not have) is the campaign spec's condition, so a lab
that measured under the spec's protocol only writes formula and value.

The checks are the predictor's (``models.features.row_errors``: the formula parses with the one parser,
the numbers follow ``models.features.parse_number``, required conditions present and not negative, a
known phase or working ion) plus the value's own: a plain finite number inside the target's physical
range (``models.targets.TARGETS[t].value_range``). Pure: a frame in, typed rows out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from featurize.composition import Composition, CompositionError, parse_formulas
from models.features import input_spec, parse_number, row_errors
from models.targets import TARGETS, TargetName

__all__ = ["MAX_RESULT_ROWS", "CheckedRow", "ResultsError", "check_results", "composition_key"]

#: Rows in one upload: a lab's batch is a handful; thousands is a mistake (or a data import, which is
#: training data, not a campaign).
MAX_RESULT_ROWS = 5000


#: Measured values a lab can report for targets the models leave unbounded: a room-temperature ionic
#: conductivity above 10 S/cm (log10 1) is beyond any known conductor, below 1e-20 S/cm nobody measures
#: it. (Retention and voltage use their physical range, ``models.targets.TARGETS[t].value_range``.)
PLAUSIBLE_RANGE: dict[TargetName, tuple[float, float]] = {TargetName.IONIC_CONDUCTIVITY: (-20.0, 1.0)}


class ResultsError(ValueError):
    """A results table that cannot be read at all (no formula column, no value column, too many rows)."""


@dataclass(frozen=True)
class CheckedRow:
    """One uploaded row after validation (``error`` empty when accepted)."""

    row: int  # 1-based position in the upload
    formula: str
    conditions: dict[str, Any]
    values: dict[str, float]
    error: str = ""
    composition: Composition | None = field(default=None, compare=False, repr=False)

    @property
    def accepted(self) -> bool:
        return not self.error


def composition_key(comp: Composition) -> tuple[Any, ...]:
    """What makes two formulas the same material for a campaign: elements and rounded fractions (the
    stacking prefix is ignored: ``P2-Na0.6Li0.2Mn0.8O2`` measured is the spec's ``Na0.6Li0.2Mn0.8O2``)."""
    return comp.key[:2]


def _condition_columns(targets: Sequence[TargetName]) -> tuple[str, ...]:
    cols: list[str] = []
    for t in targets:
        spec = input_spec(t)
        for c in (*spec.numeric, *spec.categorical):
            if c not in cols:
                cols.append(c)
    return tuple(cols)


def _blank(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _value(raw: object, target: TargetName) -> tuple[float | None, str]:
    """(value, problem) of one measured cell."""
    try:
        value = parse_number(raw)
    except ValueError:
        return None, f"{target.value}={raw!r} is not a number"
    if not math.isfinite(value):
        return None, f"{target.value}={raw!r} is not finite"
    bounds = TARGETS[target].value_range or PLAUSIBLE_RANGE.get(target)
    if bounds is not None and not bounds[0] <= value <= bounds[1]:
        unit = TARGETS[target].unit
        return None, f"{target.value}={raw!r} is outside {bounds[0]:g}..{bounds[1]:g} {unit}"
    return value, ""


def check_results(
    frame: pd.DataFrame, targets: Sequence[TargetName], defaults: Mapping[str, Any]
) -> tuple[list[CheckedRow], list[str]]:
    """Validate every row of ``frame`` for the campaign's ``targets``; ``defaults`` are the spec's
    conditions. Returns (one ``CheckedRow`` per input row, in order; notes such as ignored columns).
    ``ResultsError`` when the table as a whole cannot be used."""
    columns = [str(c) for c in frame.columns]
    if "formula" not in columns:
        raise ResultsError(f"results need a 'formula' column (columns: {', '.join(columns) or 'none'})")
    measured = [t for t in targets if t.value in columns]
    if not measured:
        names = ", ".join(t.value for t in targets)
        raise ResultsError(f"results need a value column named after a campaign target ({names})")
    if len(frame) > MAX_RESULT_ROWS:
        raise ResultsError(f"{len(frame)} rows; one upload takes at most {MAX_RESULT_ROWS}")
    conditions = _condition_columns(targets)
    known = {"formula", *(t.value for t in TargetName), *conditions}
    notes = [f"column {c!r} is not used by this campaign and was ignored" for c in columns if c not in known]
    frame = frame.reset_index(drop=True)
    formulas = ["" if _blank(f) else f for f in frame["formula"].tolist()]
    comps = parse_formulas(formulas)
    filled = _with_defaults(frame, conditions, defaults)
    per_target = {t: row_errors(t, filled, comps) for t in measured}
    rows = []
    for i, comp in enumerate(comps):
        problems: list[str] = []
        if isinstance(comp, CompositionError):
            problems.append(str(comp))
        values: dict[str, float] = {}
        for t in measured:
            raw = frame[t.value].iloc[i]
            if _blank(raw):
                continue
            value, problem = _value(raw, t)
            if problem:
                problems.append(problem)
                continue
            other = [p for p in per_target[t][i].split("; ") if p and p not in problems]
            problems.extend(other)
            if not other and value is not None:
                values[t.value] = value
        if not values and not problems:
            problems.append(f"no measured value (give one of: {', '.join(t.value for t in measured)})")
        row_conditions = {c: _condition(c, filled[c].iloc[i]) for c in conditions}
        rows.append(
            CheckedRow(
                row=i + 1,
                formula=str(frame["formula"].iloc[i]) if not _blank(frame["formula"].iloc[i]) else "",
                conditions={k: v for k, v in row_conditions.items() if v is not None},
                values=values if not problems else {},
                error="; ".join(dict.fromkeys(problems)),
                composition=None if isinstance(comp, CompositionError) else comp,
            )
        )
    return rows, notes


def _with_defaults(frame: pd.DataFrame, columns: Sequence[str], defaults: Mapping[str, Any]) -> pd.DataFrame:
    """The condition columns with the spec's value wherever a row leaves one empty."""
    out = pd.DataFrame({"formula": frame["formula"].tolist()})
    for col in columns:
        given = frame[col].tolist() if col in frame.columns else [None] * len(frame)
        default = defaults.get(col)
        out[col] = [default if _blank(v) else v for v in given]
    return out


_NUMERIC_CONDITIONS = frozenset(c for t in TargetName for c in input_spec(t).numeric)


def _condition(column: str, value: object) -> Any:
    """A condition as stored: numbers as floats (by the one number rule), text stripped, blank -> None."""
    if _blank(value):
        return None
    if hasattr(value, "item"):
        value = value.item()  # NumPy scalar
    if column in _NUMERIC_CONDITIONS:
        try:
            return parse_number(value)
        except ValueError:
            return str(value)
    return str(value).strip()
