"""Typed dependencies the routes declare (`PredictorsDep`, `SettingsDep`, ...).

They are `async def` on purpose: they only read app state, and FastAPI runs a plain `def` dependency in
the thread pool, a thread hop per dependency per request on the latency path."""

from __future__ import annotations

import hmac
import inspect
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader

from models.predictor import PredictorLike
from models.targets import TargetName
from service.api.compute import SingleThreadedCompute
from service.api.job_manager import JobManager
from service.api.job_store import JobStore
from service.api.settings import ApiSettings
from service.api.state import AppState
from service.campaigns.service import CampaignService


async def get_state(request: Request) -> AppState:
    state: AppState | None = getattr(request.app.state, "nascreen", None)
    if state is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the server is still starting")
    return state


StateDep = Annotated[AppState, Depends(get_state)]


async def request_state(request: Request) -> AppState:
    """What ``StateDep`` gives, for a route whose endpoint takes only the request
    (``service.api.request_route``): ``get_state``, or its override in ``app.dependency_overrides`` (a
    callable taking nothing or the request, sync or async) as FastAPI would have used it."""
    override = request.app.dependency_overrides.get(get_state)
    if override is None:
        return await get_state(request)
    result = override(request) if inspect.signature(override).parameters else override()
    state: AppState = await result if inspect.isawaitable(result) else result
    return state


async def get_settings(state: StateDep) -> ApiSettings:
    return state.settings


async def get_predictors(state: StateDep) -> dict[TargetName, PredictorLike]:
    return state.predictors


async def get_jobs(state: StateDep) -> JobStore:
    return state.jobs


async def get_manager(state: StateDep) -> JobManager:
    return state.manager


async def get_compute(state: StateDep) -> SingleThreadedCompute:
    return state.compute


async def get_campaigns(state: StateDep) -> CampaignService:
    return state.campaigns


SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
CampaignsDep = Annotated[CampaignService, Depends(get_campaigns)]
ComputeDep = Annotated[SingleThreadedCompute, Depends(get_compute)]
PredictorsDep = Annotated[dict[TargetName, PredictorLike], Depends(get_predictors)]
JobStoreDep = Annotated[JobStore, Depends(get_jobs)]
JobManagerDep = Annotated[JobManager, Depends(get_manager)]

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="Required when configured")


async def require_api_key(
    settings: SettingsDep, key: Annotated[str | None, Depends(_api_key_header)]
) -> None:
    """Job submission and cancellation need X-API-Key when the server has a key configured."""
    expected = settings.api_key
    if expected is None:
        return
    if key is None or not hmac.compare_digest(key.encode(), expected.get_secret_value().encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or wrong X-API-Key header",
            headers={"WWW-Authenticate": "APIKey"},
        )


ApiKeyDep = Depends(require_api_key)
