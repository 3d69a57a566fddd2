"""The three prediction targets and the prediction value object (one definition each)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class TargetName(StrEnum):
    IONIC_CONDUCTIVITY = "ionic_conductivity"
    CAPACITY_RETENTION = "capacity_retention"
    AVERAGE_VOLTAGE = "average_voltage"


@dataclass(frozen=True)
class Target:
    """What a model predicts: its unit, which direction is better, and how evaluation groups rows."""

    name: TargetName
    value_column: str
    unit: str
    description: str
    higher_is_better: bool
    group_column: str
    # Physically possible values (the curated training range); predictions and interval bounds are clipped
    # to it when served, so a wide interval never claims 108 % retention. None: unbounded.
    value_range: tuple[float, float] | None = None

    @property
    def registered_model_name(self) -> str:
        return f"nascreen-{self.name.value}"


TARGETS: dict[TargetName, Target] = {
    TargetName.IONIC_CONDUCTIVITY: Target(
        name=TargetName.IONIC_CONDUCTIVITY,
        value_column="log10_sigma_s_cm",
        unit="log10(S/cm)",
        description="room-temperature ionic conductivity of a solid electrolyte, log10(sigma / S cm^-1)",
        higher_is_better=True,
        group_column="source",
    ),
    TargetName.CAPACITY_RETENTION: Target(
        name=TargetName.CAPACITY_RETENTION,
        value_column="retention_pct",
        unit="%",
        description="capacity retention of a layered-oxide cathode, % of initial capacity after N cycles",
        higher_is_better=True,
        group_column="doi",
        value_range=(0.0, 105.0),
    ),
    TargetName.AVERAGE_VOLTAGE: Target(
        name=TargetName.AVERAGE_VOLTAGE,
        value_column="average_voltage_v",
        unit="V",
        description="average voltage of an insertion cathode vs the working ion (Na+/Na unless stated)",
        higher_is_better=True,
        group_column="chemsys",
        value_range=(0.0, 6.0),
    ),
}


def get_target(name: str | TargetName) -> Target:
    """Look a target up by name; the error lists the valid names."""
    try:
        return TARGETS[TargetName(name)]
    except ValueError:
        valid = ", ".join(t.value for t in TargetName)
        raise ValueError(f"unknown target {name!r}: expected one of {valid}") from None


@dataclass(frozen=True)
class Prediction:
    """One model answer for one input: value with uncertainty, domain flag and provenance."""

    target: TargetName
    value: float
    std: float
    lower_90: float
    upper_90: float
    in_domain: bool
    domain_reason: str
    model_version: str

    @property
    def unit(self) -> str:
        return TARGETS[self.target].unit
