"""`nascreen serve`: the HTTP API on uvicorn (127.0.0.1:8000 by default; models load once per worker).

``--workers`` (default: the CPUs this process may run on) starts that many uvicorn worker processes
sharing the port; each loads the champion models once in its lifespan and computes single-threaded (see
``service.api.compute``), so N workers use N cores. With one worker the app runs in this process.
Jobs left queued/running by a previous server are marked interrupted once here, before any worker starts,
so a worker that finishes loading its models late cannot mark a job another worker already runs.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from fastapi import FastAPI

    from service.api.settings import ApiSettings

# Set by the supervisor for its worker processes: the jobs of a previous run were already recovered.
_JOBS_RECOVERED_ENV = "NASCREEN_JOBS_RECOVERED"


def default_workers() -> int:
    """One worker process per CPU this process may use (its affinity mask, else the CPU count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def app_from_env() -> FastAPI:
    """The app of one worker process: settings from the NASCREEN_* environment the supervisor set."""
    from service.api.app import create_app
    from service.api.settings import settings_from_env

    _json_access_log()
    settings = settings_from_env()
    _guard_connections(settings)  # this worker's protocol: header deadline and connection cap
    return create_app(settings, recover_jobs=os.environ.get(_JOBS_RECOVERED_ENV) != "1")


def uvicorn_options(settings: ApiSettings, log_level: str = "info") -> dict[str, Any]:
    """The uvicorn options of every nascreen server (also used by the tests that start a real one)."""
    return {
        "host": settings.host,
        "port": settings.port,
        "log_level": log_level,
        "access_log": False,  # the app writes its own structured (JSON) access log
        "server_header": False,
        "http": _guard_connections(settings),
        "loop": settings.event_loop,
    }


def _guard_connections(settings: ApiSettings) -> str:
    from service.api.protocol import configure

    return configure(settings.header_timeout_s, settings.max_connections, settings.http_protocol)


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
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            envvar="NASCREEN_WORKERS",
            help="Server worker processes, each loading the models once (default: one per CPU).",
        ),
    ] = None,
    http: Annotated[
        str | None,
        typer.Option(
            "--http",
            help="HTTP parser: 'httptools' (C, default) or 'h11' (pure Python); same guards on both "
            "(NASCREEN_HTTP_PROTOCOL).",
        ),
    ] = None,
    loop: Annotated[
        str | None,
        typer.Option("--loop", help="Event loop: 'uvloop' (default) or 'asyncio' (NASCREEN_EVENT_LOOP)."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve predictions, dopant ranking and screening jobs over HTTP (OpenAPI docs at /docs).

    Other settings come from NASCREEN_* environment variables (e.g. NASCREEN_API_KEY,
    NASCREEN_MAX_ITEMS_PER_REQUEST, NASCREEN_CORS_ORIGINS); see service/api/settings.py.
    """
    import uvicorn

    from screening.process_guard import start_guard
    from service.api.app import create_app
    from service.api.settings import settings_from_env

    settings = settings_from_env(
        host=host,
        port=port,
        tracking_uri=tracking_uri,
        project_root=project_root.resolve(),
        job_executor=executor,
        http_protocol=http,
        event_loop=loop,
    )
    n_workers = workers or default_workers()
    common = uvicorn_options(settings, log_level)
    # Stops what this server started (worker processes, embedded Ray sessions) if it is killed (kill -9).
    state = _process_record(settings)
    guard = start_guard(label=f"nascreen serve pid {os.getpid()}", state=state)
    try:
        if n_workers == 1:
            _json_access_log()
            uvicorn.run(create_app(settings), **common)
        else:
            _run_workers(settings, n_workers, common)
    finally:
        if guard is not None:
            guard.stop()


def _process_record(settings: ApiSettings) -> Path | None:
    """Where this server's guard keeps its record (one file per port under mlruns/), after stopping what a
    previous server on this port left running when it and its guard were both killed (say so in the log)."""
    from screening.process_guard import reap_stale

    state = settings.project_root / "mlruns" / f"serve-{settings.port}.processes.json"
    try:
        state.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    stopped = reap_stale(state)
    if stopped:
        logging.getLogger(__name__).warning(
            "stopped %d process(es) a previous server on port %d left running: %s",
            len(stopped),
            settings.port,
            "; ".join(stopped),
        )
    return state


def _run_workers(settings: ApiSettings, n_workers: int, common: dict[str, Any]) -> None:
    """uvicorn's supervisor with ``n_workers`` worker processes (each builds its app in app_from_env)."""
    import uvicorn

    from service.api.job_store import JobStore

    store = JobStore(settings.resolved_jobs_db)
    try:
        interrupted = store.mark_interrupted()
    finally:
        store.close()
    if interrupted:
        logging.getLogger(__name__).warning(
            "marked %d job(s) from a previous run as interrupted", len(interrupted)
        )
    # The workers are fresh processes: they read their settings from the environment, as given here.
    os.environ.update(
        {
            "NASCREEN_HOST": settings.host,
            "NASCREEN_PORT": str(settings.port),
            "NASCREEN_TRACKING_URI": settings.resolved_tracking_uri,
            "NASCREEN_PROJECT_ROOT": str(settings.project_root),
            "NASCREEN_JOB_EXECUTOR": settings.job_executor,
            "NASCREEN_HTTP_PROTOCOL": settings.http_protocol,
            "NASCREEN_EVENT_LOOP": settings.event_loop,
            _JOBS_RECOVERED_ENV: "1",
        }
    )
    uvicorn.run(
        "service.cli.serve:app_from_env",
        factory=True,
        workers=n_workers,
        **common,
    )


def _json_access_log() -> None:
    """Request logs go to stderr as bare JSON lines (one object per request), ready for a log shipper."""
    access = logging.getLogger("nascreen.api.access")
    if access.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
