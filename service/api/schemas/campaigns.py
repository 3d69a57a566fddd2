"""Closed-loop campaigns: POST /v1/campaigns, GET /v1/campaigns[/{id}], POST .../proposals, POST .../results,
GET .../history.

The schemas check shapes and sizes (names, list lengths, finite numbers); what a measured row means
(the formula parses, the value lies in the target's range, required conditions present) is checked per
row by the campaign service, so one bad row is reported with its reason and the others are taken.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from models.targets import TargetName
from service.campaigns.results import MAX_RESULT_ROWS
from service.campaigns.service import MAX_K
from service.campaigns.store import CampaignRecord, RefitRecord, ResultRecord, RoundRecord

CAMPAIGN_EXAMPLE: dict[str, Any] = {
    "name": "nasicon-zr",
    "spec": {
        "name": "nasicon-zr-site",
        "family": "nasicon",
        "host": "Na3Zr2Si2PO12",
        "site": "Zr",
        "dopants": ["Hf", "Ti", "Sn", "Ge", "Sc", "Y"],
        "fractions": [0.05, 0.1, 0.2, 0.3],
        "compensation": "na_content",
    },
    "objectives": [{"target": "ionic_conductivity", "direction": "max"}],
    "seed": 0,
}
RESULTS_EXAMPLE: dict[str, Any] = {
    "rows": [
        {"formula": "Na3.1Zr1.9Sc0.1Si2PO12", "ionic_conductivity": -3.2},
        {"formula": "Na3Zr1.9Hf0.1Si2PO12", "ionic_conductivity": -3.5, "phase": "crystalline"},
    ]
}

#: A measured value or a condition: finite, and not absurd (the physical range is checked per row).
Number = Annotated[float, Field(allow_inf_nan=False, ge=-1e9, le=1e9)]


class ObjectiveIn(BaseModel):
    """One target to optimise (default direction: the target's natural one)."""

    model_config = ConfigDict(extra="forbid")

    target: TargetName
    direction: Literal["max", "min"] | None = None
    weight: float = Field(default=1.0, gt=0, le=1000, allow_inf_nan=False)
    threshold: float | None = Field(default=None, allow_inf_nan=False, ge=-1e9, le=1e9)


class CampaignCreate(BaseModel):
    """A new campaign: a name, a screening spec (the candidate space), objectives and acquisition."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [CAMPAIGN_EXAMPLE]})

    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_-]{0,59}$",
        description="Lower-case letters, digits, '-', '_' (it becomes the MLflow alias campaign-<name>)",
    )
    spec: dict[str, Any] = Field(description="A screening spec, the same mapping a spec file holds")
    objectives: list[ObjectiveIn] | None = Field(
        default=None, min_length=1, max_length=len(TargetName), description="Default: the spec's ranking"
    )
    acquisition: dict[str, str | float | int | bool] | None = Field(
        default=None,
        max_length=12,
        description="Acquisition settings (kind: ei | ucb | pi, kappa, explore, ...); default EI",
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    reference: str | None = Field(
        default=None, min_length=1, max_length=200, description="Default: the spec's host"
    )


class ProposalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    k: int = Field(default=6, ge=1, le=MAX_K, description="Candidates to propose")


class ResultRow(BaseModel):
    """One measured row: formula, the value of each target it measured, the conditions it was measured
    under (a condition left out is the spec's)."""

    model_config = ConfigDict(extra="forbid")

    formula: str = Field(min_length=1, max_length=200)
    ionic_conductivity: Number | None = Field(default=None, description="log10(S/cm)")
    capacity_retention: Number | None = Field(default=None, description="%")
    average_voltage: Number | None = Field(default=None, description="V")
    cycles: Number | None = Field(default=None)
    current_mA_g: Number | None = Field(default=None)
    voltage_low_V: Number | None = Field(default=None)
    voltage_high_V: Number | None = Field(default=None)
    structure_type: str | None = Field(default=None, max_length=20)
    working_ion: str | None = Field(default=None, max_length=3)
    phase: str | None = Field(default=None, max_length=40)


class ResultsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [RESULTS_EXAMPLE]})

    rows: list[ResultRow] = Field(min_length=1, max_length=MAX_RESULT_ROWS)


def _ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, tz=UTC)


class RoundOut(BaseModel):
    """A proposal round: everything needed to reproduce it, and the proposals with their reasons."""

    number: int
    created_at: datetime
    finished_at: datetime | None
    seed: int
    k: int
    spec_hash: str = Field(description="Fingerprint of the parsed spec the round scored")
    model_versions: dict[str, str] = Field(description="Registered model version per target")
    n_measured: int = Field(description="Measured rows the round was proposed from")
    mlflow_run_id: str = Field(description="The round's run in the MLflow experiment nascreen-campaigns")
    counts: dict[str, Any]
    proposals: list[dict[str, Any]] = Field(
        description="Best first: formula, per target prediction/std/interval/domain, acquisition, reason"
    )

    @classmethod
    def of(cls, r: RoundRecord) -> RoundOut:
        return cls(
            number=r.number,
            created_at=_ts(r.created_at),  # type: ignore[arg-type]
            finished_at=_ts(r.finished_at),
            seed=r.seed,
            k=r.k,
            spec_hash=r.spec_hash,
            model_versions=r.model_versions,
            n_measured=r.n_measured,
            mlflow_run_id=r.mlflow_run_id,
            counts=r.counts,
            proposals=r.proposals,
        )


class ResultOut(BaseModel):
    batch: int
    row: int = Field(description="1-based row of the upload")
    formula: str
    accepted: bool
    error: str | None = Field(description="Why the row was refused")
    values: dict[str, float]
    round: int | None = Field(description="The round that proposed this composition, if one did")
    predicted: dict[str, dict[str, Any]] = Field(
        description="What the models predicted before it was measured"
    )

    @classmethod
    def of(cls, r: ResultRecord) -> ResultOut:
        return cls(
            batch=r.batch,
            row=r.row,
            formula=r.formula,
            accepted=r.accepted,
            error=r.error or None,
            values=r.values,
            round=r.round,
            predicted=r.predicted,
        )


class RefitOut(BaseModel):
    target: str
    version: str
    run_id: str
    n_rows: int
    created_at: datetime
    metrics: dict[str, float]

    @classmethod
    def of(cls, r: RefitRecord) -> RefitOut:
        return cls(
            target=r.target,
            version=r.version,
            run_id=r.run_id,
            n_rows=r.n_rows,
            created_at=_ts(r.created_at),  # type: ignore[arg-type]
            metrics=r.metrics,
        )


class CampaignOut(BaseModel):
    id: str
    name: str
    created_at: datetime
    spec: dict[str, Any]
    spec_sha256: str
    objectives: list[dict[str, Any]]
    acquisition: dict[str, Any]
    seed: int
    reference: str | None
    n_rounds: int
    n_measured: int = Field(description="Accepted measured rows")
    n_refused: int = Field(description="Uploaded rows refused (with their reason, in the history)")
    best: dict[str, dict[str, Any]] = Field(description="Best measured so far per objective")
    campaign_models: dict[str, str] = Field(description="Target -> version of the campaign's own refit")
    links: dict[str, str]

    @classmethod
    def of(cls, record: CampaignRecord, status: Any, base: str) -> CampaignOut:
        latest: dict[str, str] = {}
        for refit in status.refits:
            latest[refit.target] = refit.version
        return cls(
            id=record.id,
            name=record.name,
            created_at=_ts(record.created_at),  # type: ignore[arg-type]
            spec=record.spec,
            spec_sha256=record.spec_sha256,
            objectives=record.objectives,
            acquisition=record.acquisition,
            seed=record.seed,
            reference=record.reference,
            n_rounds=len(status.rounds),
            n_measured=sum(r.accepted for r in status.results),
            n_refused=status.n_rejected,
            best=status.best,
            campaign_models=latest,
            links={
                "self": f"{base}/{record.id}",
                "proposals": f"{base}/{record.id}/proposals",
                "results": f"{base}/{record.id}/results",
                "history": f"{base}/{record.id}/history",
            },
        )


class CampaignList(BaseModel):
    campaigns: list[CampaignOut]


class ResultsResponse(BaseModel):
    batch: int
    n_accepted: int
    n_refused: int
    rows: list[ResultOut] = Field(description="Every uploaded row, in order, taken or refused with why")
    notes: list[str]
    refits: list[RefitOut] = Field(description="Campaign models registered by this upload")
    refit_skipped: dict[str, str] = Field(description="Target -> why it was not refitted (yet)")


class CalibrationOut(BaseModel):
    round: int | str = Field(description="Round number, or 'not proposed'")
    target: str
    n: int
    inside_90: float = Field(description="Share of measured values inside the 90% interval given before")
    mae: float


class HistoryResponse(BaseModel):
    campaign: CampaignOut
    rounds: list[RoundOut]
    results: list[ResultOut]
    calibration: list[CalibrationOut]
    refits: list[RefitOut]
