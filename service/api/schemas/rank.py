"""POST /v1/rank-dopants: a small substitution screen answered synchronously."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from models.targets import TargetName
from service.api.schemas.conditions import BatteryConditions

RANK_EXAMPLE: dict[str, Any] = {
    "family": "nasicon",
    "host": "Na3Zr2Si2PO12",
    "site": "Zr",
    "dopants": ["Hf", "Ti", "Sn", "Nb"],
    "fractions": [0.05, 0.1, 0.2],
    "compensation": "na_content",
    "ranking": {"mode": "ucb", "kappa": 1.0},
    "top_k": 10,
}


#: The conditions of a rank request: the API's one battery-condition model.
RankConditions = BatteryConditions


class RankRequest(BaseModel):
    """Host + site + dopants + fractions (+ compensation, conditions, ranking): the substitution form of a
    screening spec, small enough to answer in one request."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [RANK_EXAMPLE]})

    family: str = Field(description="Material family (decides the targets), e.g. nasicon, p2_layered_oxide")
    host: str = Field(min_length=1, max_length=200, description="Host formula")
    site: str = Field(min_length=1, max_length=3, description="Host element the dopant replaces")
    dopants: list[str] = Field(min_length=1, max_length=120, description="Element symbols and/or group names")
    fractions: list[float] = Field(min_length=1, description="Dopant amounts on the site")
    compensation: str | dict[str, Any] | None = Field(
        default=None, description="na_content | variable_valence | vacancy | none"
    )
    valences: dict[str, float | list[float]] | None = None
    codoping: dict[str, Any] | None = None
    conditions: RankConditions | None = None
    targets: list[TargetName] | None = None
    phase: str | None = Field(
        default=None,
        max_length=40,
        description="crystalline | amorphous | glass | glass-ceramic | unknown (default): the phase the "
        "conductivity model predicts every candidate in",
    )
    ranking: dict[str, Any] | None = Field(
        default=None,
        description="Ranking settings: mode value|ucb|ei|pareto, objectives, kappa, ...; by value|delta|"
        "p_better (per objective or for all) ranks on the change vs the reference or P(better than it)",
    )
    reference: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="What delta / p_better compare with (default: host)",
    )
    anchors: list[dict[str, Any]] | dict[str, list[dict[str, Any]]] | None = Field(
        default=None,
        description="Your measured rows {formula, measured, target, cycles, ...} (or {target: rows}), "
        "at most 100: absolute predictions are offset to your lab (anchored_* columns)",
    )
    top_k: int = Field(default=20, ge=1, le=1000, description="Rows returned")

    def to_spec(self) -> dict[str, Any]:
        label = re.sub(r"[^A-Za-z0-9_.\-]", "_", f"{self.host}-{self.site}")[:90]
        spec: dict[str, Any] = {"name": f"rank-{label}"}
        spec.update(self.model_dump(exclude_none=True, exclude={"top_k", "conditions", "targets"}))
        if self.conditions is not None:
            spec["conditions"] = self.conditions.model_dump(exclude_none=True)
        if self.targets is not None:
            spec["targets"] = [t.value for t in self.targets]
        return spec


class RejectedCandidate(BaseModel):
    candidate: str
    reason: str


class RankResponse(BaseModel):
    ranking: str = Field(description="Which mode and parameters produced this order")
    targets: list[TargetName]
    n_generated: int
    n_rejected: int = Field(description="Candidates that failed the charge-neutrality check")
    n_scored: int
    phase: str = Field(default="unknown", description="The phase every candidate was predicted in")
    candidates: list[dict[str, Any]] = Field(
        description="Top-k rows: rank, score, formula, dopant, fraction, and per target prediction/std/"
        "lower_90/upper_90/in_domain/domain_reason/model_version/error and the change vs the reference "
        "(delta, delta_std, delta_lower_90, delta_upper_90, p_better, anchored_*, relative_error); the host "
        "row (is_host, the 0 line) is always included, after the top k when it is not among them"
    )
    reference: str = Field(default="", description="The formula delta / p_better are measured from")
    rejected: list[RejectedCandidate] = Field(description="Up to 100 rejected candidates with their reason")
