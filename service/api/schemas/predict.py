"""POST /v1/predict: a batch of items (formula + conditions) x targets."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Annotated, Any, NotRequired

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator
from typing_extensions import TypedDict  # pydantic needs typing_extensions' TypedDict before 3.12

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


#: Anchors are the user's own few measured rows, not a dataset.
MAX_ANCHORS = 100

RELATIVE_EXAMPLE: dict[str, Any] = {
    "items": [
        {"formula": "Na0.6Li0.2Mn0.7Ru0.1O2", "cycles": 200, "current_mA_g": 170},
        {"formula": "Na0.6Li0.2Mn0.7Ti0.1O2", "cycles": 200, "current_mA_g": 170},
    ],
    "targets": ["capacity_retention"],
    "reference": "Na0.6Li0.2Mn0.8O2",
    "anchors": [{"formula": "Na0.6Li0.2Mn0.8O2", "cycles": 200, "current_mA_g": 170, "measured": 45.5}],
}


class AnchorItem(PredictItem):
    """One of the user's own measured rows (formula, the conditions it was measured under, the value)."""

    measured: float = Field(description="The measured value, in the target's unit")
    target: TargetName | None = Field(
        default=None, description="What was measured; may be left out when the request asks for one target"
    )

    @field_validator("measured")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("measured must be a finite number")
        return v


class PredictRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [PREDICT_EXAMPLE, RELATIVE_EXAMPLE]}
    )

    items: list[PredictItem] = Field(min_length=1, description="Up to the server's max_items_per_request")
    targets: list[TargetName] = Field(min_length=1, max_length=len(TargetName))
    reference: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Host formula: each item also gets its change vs the host under the item's own "
        "conditions (delta, its 90% interval, P(better than the host)); the host's own row is the 0 line",
    )
    anchors: list[AnchorItem] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_ANCHORS,
        description="Your own measured rows (needs reference): absolute values offset to your lab",
    )

    @field_validator("targets")
    @classmethod
    def _unique(cls, v: list[TargetName]) -> list[TargetName]:
        if len(set(v)) != len(v):
            raise ValueError("targets must not repeat")
        return v

    @model_validator(mode="after")
    def _anchors_need_reference(self) -> PredictRequest:
        if self.anchors is None:
            return self
        if self.reference is None:
            raise ValueError("anchors need a reference (the host formula)")
        for i, anchor in enumerate(self.anchors):
            if anchor.target is None and len(self.targets) > 1:
                raise ValueError(
                    f"anchors[{i}]: say which target was measured (the request asks for several)"
                )
            if anchor.target is not None and anchor.target not in self.targets:
                raise ValueError(f"anchors[{i}]: target {anchor.target.value!r} is not requested")
        return self

    def anchor_target(self, anchor: AnchorItem) -> TargetName:
        return anchor.target if anchor.target is not None else self.targets[0]


def validator_free_shape(
    model: type[BaseModel], replace: Mapping[str, Any], leave_out: Collection[str] = ()
) -> Any:
    """A ``TypedDict`` with ``model``'s fields, types, length bounds and config (``extra="forbid"``) but
    none of its Python validators: pydantic checks it entirely in Rust. ``replace``: field -> the type to
    use instead (a nested model's shape); ``leave_out``: fields it does not accept (a body holding one
    fails it). Optional fields may be absent (absent = null: every optional field defaults to None)."""
    fields: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if name in leave_out:
            continue
        annotation = replace.get(name, field.annotation)
        if field.metadata:
            annotation = Annotated[(annotation, *field.metadata)]
        fields[name] = annotation if field.is_required() else NotRequired[annotation]
    shape = TypedDict(f"{model.__name__}Shape", fields)  # type: ignore[misc]
    setattr(shape, "__pydantic_config__", ConfigDict(**model.model_config))  # noqa: B010
    return shape


#: ``PredictRequest`` without anchors, with no Python validators (see ``validator_free_shape``): what
#: ``service.api.predict_input`` parses a body with first. What it leaves to Python (the condition bounds
#: and voltage window of ``BatteryConditions``, unique targets) is checked there column-wise; a body it
#: refuses, or that fails those checks, is validated by ``PredictRequest`` for the exact error.
PREDICT_REQUEST_SHAPE: TypeAdapter[dict[str, Any]] = TypeAdapter(
    validator_free_shape(
        PredictRequest,
        {"items": list[validator_free_shape(PredictItem, {})]},  # type: ignore[misc]
        leave_out={"anchors"},
    )
)


class RelativePrediction(BaseModel):
    """One target's answer for one item relative to the reference (the host) under the item's conditions."""

    reference: str = Field(description="The reference (host) formula")
    reference_value: float | None = Field(default=None, description="The host's prediction, same conditions")
    delta: float | None = Field(default=None, description="Predicted change vs the host (item - host)")
    delta_std: float | None = None
    delta_lower_90: float | None = Field(default=None, description="Calibrated 90% interval of the change")
    delta_upper_90: float | None = None
    p_better: float | None = Field(default=None, description="P(the item beats the host)")
    anchored_value: float | None = Field(
        default=None, description="Absolute prediction offset to your anchors (null without anchors)"
    )
    anchored_lower_90: float | None = None
    anchored_upper_90: float | None = None
    n_anchors: int = Field(default=0, description="Anchors that went into the offset")
    error: str | None = Field(default=None, description="Why there is no relative answer for this item")


class AnchorResult(BaseModel):
    """How one anchor row was used: its prediction and residual, or why it could not anchor."""

    index: int
    target: TargetName
    formula: str
    measured: float
    prediction: float | None = None
    residual: float | None = Field(default=None, description="measured - prediction")
    error: str | None = None


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
    relative: RelativePrediction | None = Field(
        default=None, description="With a reference: the change vs the host (see RelativePrediction)"
    )


class ItemResult(BaseModel):
    index: int = Field(description="Position of the item in the request")
    id: str | None = None
    formula: str
    predictions: dict[TargetName, TargetPrediction]


class ReferenceResult(BaseModel):
    """The host under one set of the items' conditions: the 0 line the deltas are measured from."""

    formula: str
    conditions: dict[str, float | str] = Field(description="The conditions it was predicted under")
    predictions: dict[TargetName, TargetPrediction]


class PredictResponse(BaseModel):
    results: list[ItemResult]
    reference: list[ReferenceResult] | None = Field(
        default=None, description="With a reference: the host row per distinct conditions of the items"
    )
    anchors: list[AnchorResult] | None = Field(default=None, description="Each anchor row, used or why not")
