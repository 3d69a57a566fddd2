"""`nascreen serve`: the HTTP API on uvicorn (127.0.0.1:8000 by default; models load once at start-up)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer


def serve(
    host: Annotated[str, typer.Option(help="Interface to bind; keep 127.0.0.1 unless behind a proxy.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    tracking_uri: Annotated[
        str | None,
        typer.Option(help="MLflow store (default MLFLOW_TRACKING_URI or sqlite:///<root>/mlruns/mlflow.db)."),
    ] = None,
    project_root: Annotated[
        Path, typer.Option(help="Directory holding mlruns/ (models, job records, job results).")
    ] = Path("."),
    executor: Annotated[
        str | None, typer.Option(help="Screening jobs on 'ray' (default) or 'local' (in-process).")
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve predictions, dopant ranking and screening jobs over HTTP (OpenAPI docs at /docs).

    Other settings come from NASCREEN_* environment variables (e.g. NASCREEN_API_KEY,
    NASCREEN_MAX_ITEMS_PER_REQUEST, NASCREEN_CORS_ORIGINS); see service/api/settings.py.
    """
    import uvicorn

    from service.api.app import create_app
    from service.api.settings import settings_from_env

    settings = settings_from_env(
        host=host,
        port=port,
        tracking_uri=tracking_uri,
        project_root=project_root.resolve(),
        job_executor=executor,
    )
    _json_access_log()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        access_log=False,  # the app writes its own structured (JSON) access log
        server_header=False,
    )


def _json_access_log() -> None:
    """Request logs go to stderr as bare JSON lines (one object per request), ready for a log shipper."""
    access = logging.getLogger("nascreen.api.access")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
