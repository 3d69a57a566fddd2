"""GET /health: ready or not, and which model versions answer."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter

from service.api.deps import StateDep
from service.api.schemas.health import HealthResponse

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthResponse, summary="Readiness and loaded model versions")
async def health(state: StateDep) -> HealthResponse:
    models = {t.value: p.model_version for t, p in state.predictors.items()}
    missing = {t.value: reason for t, reason in state.missing.items()}
    status: Literal["ok", "degraded", "not_ready"]
    if not models:
        status = "not_ready"
    elif missing:
        status = "degraded"
    else:
        status = "ok"
    return HealthResponse(
        status=status,
        ready=bool(models),
        models=models,
        missing=missing,
        job_executor=state.settings.job_executor,
    )
