"""API settings: one validated pydantic model, read from the environment in exactly one function.

`pydantic-settings` is not a project dependency, so the environment is read explicitly by
`settings_from_env` (prefix ``NASCREEN_``); everything else receives an `ApiSettings` value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from models.targets import TargetName

ENV_PREFIX = "NASCREEN_"

HttpProtocolName = Literal["httptools", "h11"]  # the HTTP/1.1 protocols of service.api.protocol


class ApiSettings(BaseModel):
    """Everything the HTTP service can be configured with. Immutable once built."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    project_root: Path = Field(default_factory=Path.cwd, description="Where mlruns/ lives.")
    tracking_uri: str | None = Field(
        default=None, description="MLflow tracking URI; default sqlite:///<project_root>/mlruns/mlflow.db"
    )
    jobs_db: Path | None = Field(default=None, description="Job store; default <project_root>/mlruns/jobs.db")
    campaigns_db: Path | None = Field(
        default=None, description="Campaign store; default <project_root>/mlruns/campaigns.db"
    )
    data_dir: Path | None = Field(
        default=None, description="Curated training data a campaign refit adds its rows to; default shipped"
    )
    results_dir: Path | None = Field(
        default=None, description="Screening job outputs; default <project_root>/mlruns/screening-jobs"
    )
    targets: tuple[TargetName, ...] = Field(
        default=tuple(TargetName), description="Targets whose champion models are loaded at start-up."
    )

    inline_max_items: int = Field(
        default=0,
        ge=0,
        description="Predict requests up to this size run on the event loop (0: none; they would block it).",
    )
    max_items_per_request: int = Field(default=1000, ge=1, description="Items in one /v1/predict call.")
    max_body_bytes: int = Field(default=1_048_576, ge=1024, description="Request bodies above this get 413.")
    body_timeout_s: float = Field(
        default=10.0, gt=0, le=600, description="Whole request body must arrive within this, else 408."
    )
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="Request line and headers must arrive within this, else 408 and the connection closes.",
    )
    max_connections: int = Field(
        default=256, ge=1, le=100_000, description="Open connections per server process; beyond it 503."
    )
    http_protocol: HttpProtocolName = Field(
        default="httptools",
        description="HTTP/1.1 parser: uvicorn's httptools (C) or h11 (pure Python); same guards on both.",
    )
    event_loop: Literal["uvloop", "asyncio"] = Field(
        default="uvloop", description="Event loop of each server process: uvloop (libuv) or asyncio's own."
    )
    max_json_depth: int = Field(
        default=64, ge=2, le=256, description="JSON bodies nested deeper than this get 400."
    )
    max_fraction_grid: int = Field(default=50, ge=1, description="Fractions in one rank/screen request.")
    max_rank_candidates: int = Field(
        default=2000, ge=1, description="Candidates /v1/rank-dopants scores synchronously."
    )
    max_job_candidates: int = Field(default=5_000_000, ge=1, description="Cap on one job's candidates.")
    top_k: int = Field(default=20, ge=1, le=1000, description="Rows shown as top-k of a screening job.")

    job_executor: Literal["ray", "local"] = Field(
        default="ray", description="Screening jobs on Ray (default) or in-process (tests, small machines)."
    )
    job_workers: int = Field(default=1, ge=1, le=8, description="Screening jobs run at the same time.")
    ray_address: str | None = Field(default=None, description="Ray cluster; default local Ray.")
    ray_num_cpus: int | None = Field(default=None, ge=1, description="CPUs of the embedded Ray; default all.")
    chunk_size: int | None = Field(default=None, ge=1, description="Candidates per job chunk.")

    api_key: SecretStr | None = Field(
        default=None, description="When set, X-API-Key must match it to submit or cancel screening jobs."
    )
    cors_origins: tuple[str, ...] = Field(default=(), description="CORS is off unless origins are listed.")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)

    @field_validator("api_key")
    @classmethod
    def _empty_key_is_none(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not v.get_secret_value():
            return None
        return v

    @property
    def resolved_tracking_uri(self) -> str:
        if self.tracking_uri:
            return self.tracking_uri
        return f"sqlite:///{(self.project_root / 'mlruns' / 'mlflow.db').resolve()}"

    @property
    def resolved_jobs_db(self) -> Path:
        return self.jobs_db if self.jobs_db is not None else self.project_root / "mlruns" / "jobs.db"

    @property
    def resolved_campaigns_db(self) -> Path:
        if self.campaigns_db is not None:
            return self.campaigns_db
        return self.project_root / "mlruns" / "campaigns.db"

    @property
    def resolved_data_dir(self) -> Path:
        if self.data_dir is not None:
            return self.data_dir
        import models

        return Path(models.__file__).resolve().parents[1] / "data"

    @property
    def resolved_results_dir(self) -> Path:
        if self.results_dir is not None:
            return self.results_dir
        return self.project_root / "mlruns" / "screening-jobs"


_LIST_FIELDS = {"targets", "cors_origins"}


def settings_from_env(environ: Mapping[str, str] | None = None, **overrides: object) -> ApiSettings:
    """Build settings from ``NASCREEN_<FIELD>`` variables (lists comma-separated), then `overrides`.

    ``MLFLOW_TRACKING_URI`` is honoured as the tracking URI when ``NASCREEN_TRACKING_URI`` is unset.
    """
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for name in ApiSettings.model_fields:
        raw = env.get(ENV_PREFIX + name.upper())
        if raw is None:
            continue
        values[name] = [p.strip() for p in raw.split(",") if p.strip()] if name in _LIST_FIELDS else raw
    if "tracking_uri" not in values and env.get("MLFLOW_TRACKING_URI"):
        values["tracking_uri"] = env["MLFLOW_TRACKING_URI"]
    values.update({k: v for k, v in overrides.items() if v is not None})
    return ApiSettings.model_validate(values)
