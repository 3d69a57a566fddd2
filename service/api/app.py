"""`create_app(settings)`: the FastAPI application, with no import-time side effects.

Champion models are loaded once in the lifespan (before the server accepts requests), the job store is
opened there (jobs left running by a previous process are marked interrupted), and the job runner is
shut down there on exit.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.models import OpenAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.api.middleware import RequestContextMiddleware
from service.api.responses import SafeJSONResponse, is_json_safe, json_safe, safe_text
from service.api.routes import campaigns, health, jobs, models, predict, rank
from service.api.settings import ApiSettings
from service.api.state import build_state
from service.web.router import mount_web

logger = logging.getLogger(__name__)

API_VERSION = "1"

_DESCRIPTION = """
ML screening of sodium-battery materials: ionic conductivity of solid electrolytes, capacity retention
and average voltage of layered-oxide cathodes, each with a calibrated 90% interval and an
applicability-domain flag. Synchronous prediction and dopant ranking; large screens run as jobs.
"""


def freeze_startup_heap() -> None:
    """Move every object alive after start-up (the loaded models, the imported libraries) out of the
    garbage collector's reach: they live as long as the process, yet each full collection walked them
    all. A request allocating many objects (a 1,000-item body: ~10k pydantic/dict objects) triggered
    such collections; measured, validating that body took 8.6 ms with the models' heap under the
    collector and 1.2 ms with it frozen. Frozen objects are never freed, which is what a server's
    start-up state needs; garbage made later is collected as before."""
    gc.collect()
    gc.freeze()


def create_app(settings: ApiSettings, *, recover_jobs: bool = True) -> FastAPI:
    """Build the app for `settings`. Nothing is loaded until the lifespan starts.

    ``recover_jobs=False``: a worker of a multi-process server, whose supervisor already marked the jobs
    of a previous run as interrupted (a worker doing it would also hit jobs its siblings just started)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = build_state(settings, recover_jobs=recover_jobs)
        app.state.nascreen = state
        freeze_startup_heap()
        try:
            yield
        finally:
            state.close()

    app = FastAPI(
        title="nascreen",
        version=API_VERSION,
        description=_DESCRIPTION,
        lifespan=lifespan,
        default_response_class=SafeJSONResponse,
    )
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)
    app.include_router(health.router)
    for module in (models, predict, rank, jobs, campaigns):
        app.include_router(module.router, prefix="/v1")
    app.openapi = _openapi_with_models(app, predict.BODY_MODELS)  # type: ignore[method-assign]
    mount_web(app)  # the screening page at / (static files shipped in service/web/static)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Content-Type", "X-API-Key", "X-Request-ID"],
        )
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        body_timeout_s=settings.body_timeout_s,
        max_json_depth=settings.max_json_depth,
    )
    return app


def _openapi_with_models(app: FastAPI, models: Sequence[type[BaseModel]]) -> Callable[[], dict[str, Any]]:
    """``app.openapi`` with ``models`` (and the models they use) among the schema components: the request
    bodies that a route reads itself (``POST /v1/predict``) and documents by reference."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = generate()
            _, defs = models_json_schema(
                [(m, "validation") for m in models], ref_template="#/components/schemas/{model}"
            )
            components = spec.setdefault("components", {})
            schemas = {**defs.get("$defs", {}), **components.get("schemas", {})}
            components["schemas"] = dict(sorted(schemas.items()))  # sorted, as FastAPI lists them
            # rendered as FastAPI renders its document (key order, no nulls)
            app.openapi_schema = jsonable_encoder(OpenAPI(**spec), by_alias=True, exclude_none=True)
        return app.openapi_schema

    return openapi


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 listing each problem with where it is (e.g. body.items.3.cycles) and why. The offending input is
    echoed only when it is a short scalar that renders as JSON unchanged: never a huge body, and never a
    non-finite number (NaN, Infinity, 1e999) or a lone surrogate, which JSON cannot carry."""
    assert isinstance(exc, RequestValidationError)
    problems = []
    for err in exc.errors():
        item: dict[str, object] = {
            "loc": [p if isinstance(p, int) else safe_text(str(p)) for p in err.get("loc", ())],
            "msg": safe_text(str(err.get("msg", ""))),
            "type": str(err.get("type", "")),
        }
        value = err.get("input")
        if isinstance(value, str | int | float | bool) and len(repr(value)) <= 200 and is_json_safe(value):
            item["input"] = value
        problems.append(item)
    return SafeJSONResponse(status_code=422, content={"detail": problems})


async def _http_error(request: Request, exc: Exception) -> Response:
    """Errors raised as HTTPException, with a detail that always renders (it may quote the request)."""
    assert isinstance(exc, StarletteHTTPException)
    headers = getattr(exc, "headers", None)
    if exc.status_code in (204, 304):  # no body allowed
        return Response(status_code=exc.status_code, headers=headers)
    return SafeJSONResponse(
        status_code=exc.status_code, content={"detail": json_safe(exc.detail)}, headers=headers
    )


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    """A bug answered as JSON with the request id to quote, never a traceback (the server logs that)."""
    request_id = request.scope.get("state", {}).get("request_id", "")
    logger.error(
        "unhandled %s in %s %s (request %s)", type(exc).__name__, request.method, request.url.path, request_id
    )
    return JSONResponse(
        status_code=500,
        content={"detail": f"internal error; quote request id {request_id} when reporting it"},
    )
