"""The battery-condition fields of the HTTP API, built from ``models.conditions`` (their one definition):
the conditions of ``/v1/rank-dopants`` and the condition fields of each ``/v1/predict`` item are this model,
so the names, units, descriptions and bounds cannot drift from the screening spec's."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from models.conditions import NUMERIC_CONDITIONS, check_condition, check_window, condition_field


def _number(name: str) -> Any:
    """The field's description and bounds in the OpenAPI schema; the check itself is ``check_condition``
    (so the 422 message is the spec parser's: ``must be at most 10 V, got 50``)."""
    field = condition_field(name)
    return Field(
        default=None,
        description=f"{field.description} (> 0, at most {field.maximum:g})",
        json_schema_extra={"exclusiveMinimum": 0, "maximum": field.maximum},
    )


class BatteryConditions(BaseModel):
    """Battery test conditions (``models.conditions.CONDITION_FIELDS``); every number > 0 and at most the
    field's maximum, a voltage window low below high."""

    model_config = ConfigDict(extra="forbid")

    cycles: float | None = _number("cycles")
    current_mA_g: float | None = _number("current_mA_g")
    voltage_low_V: float | None = _number("voltage_low_V")
    voltage_high_V: float | None = _number("voltage_high_V")
    working_ion: str | None = Field(
        default=None, max_length=3, description="average_voltage: working ion (default Na)"
    )

    @field_validator(*NUMERIC_CONDITIONS)
    @classmethod
    def _bounds(cls, value: float | None, info: ValidationInfo) -> float | None:
        return None if value is None else check_condition(str(info.field_name), value)

    @model_validator(mode="after")
    def _window(self) -> BatteryConditions:
        check_window(self.voltage_low_V, self.voltage_high_V)
        return self
