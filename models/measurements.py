"""A lab measurement: one measured value of one target for one composition under stated conditions (the
campaign's unit of evidence; validated on construction, a bad value raises ValueError naming it)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from featurize.composition import CompositionError, parse_formula
from models.targets import TargetName

__all__ = ["ConditionValue", "Measurement", "finite_number"]

ConditionValue = float | str


def finite_number(value: object, where: str) -> float:
    """``value`` as a finite float (not a bool); ValueError naming ``where`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}: {value!r} is not a number")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{where}: {value!r} is not finite")
    return out


@dataclass(frozen=True)
class Measurement:
    """One measured value of one target for one composition under stated conditions, from round
    ``round`` of a campaign (0: the rows the campaign started with). ``conditions``: the predictor's
    condition inputs it was measured under (numbers as floats, ``phase``/``structure_type`` as text)."""

    formula: str
    target: TargetName
    value: float
    conditions: Mapping[str, ConditionValue] = field(default_factory=dict)
    round: int = 0

    def __post_init__(self) -> None:
        try:
            parse_formula(self.formula)
        except CompositionError as exc:
            raise ValueError(f"measurement formula {self.formula!r}: {exc}") from None
        try:
            object.__setattr__(self, "target", TargetName(self.target))
        except ValueError:
            raise ValueError(f"measurement of {self.formula!r}: unknown target {self.target!r}") from None
        object.__setattr__(
            self, "value", finite_number(self.value, f"measurement of {self.formula!r}: value")
        )
        conds: dict[str, ConditionValue] = {}
        for k, v in dict(self.conditions).items():
            if isinstance(v, str):
                conds[str(k)] = v
            else:
                conds[str(k)] = finite_number(v, f"measurement of {self.formula!r}: condition {k}")
        object.__setattr__(self, "conditions", conds)
        if isinstance(self.round, bool) or not isinstance(self.round, int) or self.round < 0:
            raise ValueError(
                f"measurement of {self.formula!r}: round must be an integer >= 0, got {self.round!r}"
            )
