"""POST /v1/predict: a batch of items (formula + conditions) x targets."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from models.targets import TargetName
from service.api.schemas.conditions import BatteryConditions

PREDICT_EXAMPLE: dict[str, Any] = {
    "items": [
        {"formula": "Na3Zr2Si2PO12"},
        {"formula": "P2-Na0.67MnO2", "cycles": 100, "current_mA_g": 20},
    ],
    "targets": ["ionic_conductivity", "capacity_retention"],
}


class PredictItem(BatteryConditions):
    """One material and the conditions some targets need (the columns of the `nascreen predict` CSV; the
    condition fields are ``BatteryConditions``)."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, max_length=200, description="Client's own label, echoed back")
    formula: str = Field(min_length=1, max_length=200, examples=["Na3Zr2Si2PO12", "P2-Na0.67MnO2"])
    phase: str | None = Field(
        default=None,
        max_length=40,
        description="ionic_conductivity: crystalline, amorphous, glass, glass-ceramic or unknown (default)",
    )


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [PREDICT_EXAMPLE]})

    items: list[PredictItem] = Field(min_length=1, description="Up to the server's max_items_per_request")
    targets: list[TargetName] = Field(min_length=1, max_length=len(TargetName))

    @field_validator("targets")
    @classmethod
    def _unique(cls, v: list[TargetName]) -> list[TargetName]:
        if len(set(v)) != len(v):
            raise ValueError("targets must not repeat")
        return v


class TargetPrediction(BaseModel):
    """One target's answer for one item: a value with uncertainty and a domain flag, or an error."""

    value: float | None = Field(description="Point prediction in `unit`; null when `error` is set")
    std: float | None = None
    lower_90: float | None = Field(default=None, description="Lower end of the calibrated 90% interval")
    upper_90: float | None = None
    unit: str
    in_domain: bool | None = Field(default=None, description="Inside the model's applicability domain")
    domain_reason: str = Field(default="", description="Why the item is out of domain ('' when in domain)")
    model_version: str = ""
    error: str | None = Field(default=None, description="Why this item could not be predicted (this target)")


class ItemResult(BaseModel):
    index: int = Field(description="Position of the item in the request")
    id: str | None = None
    formula: str
    predictions: dict[TargetName, TargetPrediction]


class PredictResponse(BaseModel):
    results: list[ItemResult]
