"""`create_app(settings)`: the FastAPI application, with no import-time side effects.

Champion models are loaded once in the lifespan (before the server accepts requests), the job store is
opened there (jobs left running by a previous process are marked interrupted), and the job runner is
shut down there on exit.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from service.api.middleware import RequestContextMiddleware
from service.api.routes import health, jobs, models, predict, rank
from service.api.settings import ApiSettings
from service.api.state import build_state

logger = logging.getLogger(__name__)

API_VERSION = "1"

_DESCRIPTION = """
ML screening of sodium-battery materials: ionic conductivity of solid electrolytes, capacity retention
and average voltage of layered-oxide cathodes, each with a calibrated 90% interval and an
applicability-domain flag. Synchronous prediction and dopant ranking; large screens run as jobs.
"""


def create_app(settings: ApiSettings) -> FastAPI:
    """Build the app for `settings`. Nothing is loaded until the lifespan starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = build_state(settings)
        app.state.nascreen = state
        try:
            yield
        finally:
            state.close()

    app = FastAPI(
        title="nascreen",
        version=API_VERSION,
        description=_DESCRIPTION,
        lifespan=lifespan,
    )
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.include_router(health.router)
    for module in (models, predict, rank, jobs):
        app.include_router(module.router, prefix="/v1")
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Content-Type", "X-API-Key", "X-Request-ID"],
        )
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes)
    return app


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 listing each problem with where it is (e.g. body.items.3.cycles) and why; the offending input
    is echoed only when short, so a huge body is never reflected back."""
    assert isinstance(exc, RequestValidationError)
    problems = []
    for err in exc.errors():
        item: dict[str, object] = {
            "loc": list(err.get("loc", ())),
            "msg": str(err.get("msg", "")),
            "type": str(err.get("type", "")),
        }
        value = err.get("input")
        if isinstance(value, str | int | float | bool) and len(repr(value)) <= 200:
            item["input"] = value
        problems.append(item)
    return JSONResponse(status_code=422, content={"detail": problems})
