"""GET /health."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class HealthResponse(BaseModel):
    status: Literal["ok", "degraded", "not_ready"] = Field(
        description="ok: every configured target has a model; degraded: some do; not_ready: none"
    )
    ready: bool = Field(description="True when at least one model is loaded and predictions can be served")
    models: dict[str, str] = Field(description="Loaded champion model version per target")
    missing: dict[str, str] = Field(default_factory=dict, description="Why a configured target has no model")
    job_executor: str
