"""The API through a real uvicorn server on 127.0.0.1 (a free port), called with httpx."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from service.api.app import create_app
from service.api.settings import ApiSettings

pytestmark = [pytest.mark.server, pytest.mark.slow, pytest.mark.mlflow]

SPEC: dict[str, Any] = {
    "name": "server-nasicon",
    "family": "nasicon",
    "host": "Na3Zr2Si2PO12",
    "site": "Zr",
    "dopants": ["Hf", "Ti", "Sn", "Nb"],
    "fractions": [0.05, 0.1],
    "compensation": "na_content",
    "ranking": {"mode": "ucb", "kappa": 1.0, "objectives": ["ionic_conductivity"]},
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def serve() -> Iterator[Any]:
    """Start uvicorn in a thread for given settings; always shut it down."""
    started: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(settings: ApiSettings) -> str:
        port = free_port()
        config = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=port, log_level="warning", access_log=False
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
        thread.start()
        started.append((server, thread))
        deadline = time.monotonic() + 120
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("uvicorn exited during start-up")
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start in 120 s")
            time.sleep(0.05)
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in started:
        server.should_exit = True
        thread.join(timeout=60)
        assert not thread.is_alive(), "the server thread did not stop"


def run_job(client: httpx.Client, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    r = client.post("/v1/screening-jobs", json=spec, headers={"X-API-Key": "test-key"})
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get(f"/v1/screening-jobs/{job_id}").json()
        if body["status"] not in ("queued", "running"):
            return body
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


def test_real_server_predicts_and_runs_a_screening_job(
    serve: Any, served_settings: ApiSettings, tmp_path: Any
) -> None:
    settings = served_settings.model_dump()
    settings.update(project_root=tmp_path, api_key="test-key")
    base = serve(ApiSettings.model_validate(settings))
    with httpx.Client(base_url=base, timeout=60) as client:
        health = client.get("/health")
        assert health.status_code == 200 and health.json()["ready"] is True
        assert health.headers["x-request-id"]

        r = client.post(
            "/v1/predict",
            json={
                "items": [{"formula": "Na3Zr2Si2PO12"}, {"formula": "Na2XyO3"}],
                "targets": ["ionic_conductivity"],
            },
        )
        assert r.status_code == 200
        good, bad = (x["predictions"]["ionic_conductivity"] for x in r.json()["results"])
        assert good["value"] is not None and good["lower_90"] <= good["value"] <= good["upper_90"]
        assert "Xy" in bad["error"]

        assert client.post("/v1/screening-jobs", json=SPEC).status_code == 401
        done = run_job(client, SPEC, timeout=120)
        assert done["status"] == "succeeded", done
        assert done["top_k"][0]["rank"] == 1
        csv = client.get(done["results"]["csv"])
        assert csv.status_code == 200
        header = csv.text.splitlines()[0].split(",")
        assert {"formula", "score", "rank", "ionic_conductivity_prediction"} <= set(header)


@pytest.mark.ray
def test_real_server_runs_a_screening_job_on_ray(
    serve: Any, served_settings: ApiSettings, tmp_path: Any
) -> None:
    settings = served_settings.model_dump()
    # one Ray worker: each worker loads the models itself, and one is enough to prove the path
    settings.update(project_root=tmp_path, job_executor="ray", ray_num_cpus=1, api_key="test-key")
    base = serve(ApiSettings.model_validate(settings))
    with httpx.Client(base_url=base, timeout=60) as client:
        assert client.get("/health").json()["job_executor"] == "ray"
        done = run_job(client, {**SPEC, "name": "server-nasicon-ray"}, timeout=240)
        assert done["status"] == "succeeded", done
        assert done["progress"]["done"] == done["progress"]["total"] == 9
        parquet = client.get(done["results"]["parquet"])
        assert parquet.status_code == 200 and parquet.content[:4] == b"PAR1"


def _worker_processes(parent: int) -> list[int]:
    """The uvicorn worker processes (multiprocessing spawn children) of a server process."""
    from pathlib import Path

    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


def test_nascreen_serve_with_two_workers_answers_like_the_predictor(
    served_settings: ApiSettings, tmp_path: Any
) -> None:
    """`nascreen serve --workers 2` as users start it: two processes behind one port, each with its models;
    /health and the predictions (exactly the in-process predictor's, in the documented schema) from both."""
    import os
    import subprocess
    import sys

    import pandas as pd

    from models.predictor import load_predictors
    from models.targets import TargetName
    from service.api.schemas.predict import PredictResponse

    port = free_port()
    env = {
        **os.environ,
        "NASCREEN_TARGETS": "ionic_conductivity",
        "NASCREEN_JOB_EXECUTOR": "local",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    cmd = [
        sys.executable, "-c", "from service.cli import main; main()", "serve", "--workers", "2",
        "--host", "127.0.0.1", "--port", str(port), "--project-root", str(tmp_path),
        "--tracking-uri", served_settings.resolved_tracking_uri, "--log-level", "warning",
    ]  # fmt: skip
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    formulas = ["Na3Zr2Si2PO12", "Na3.2Zr1.8Sc0.2Si2PO12", "Na2XyO3", "Na3PS4"]
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            deadline = time.monotonic() + 180
            while True:
                assert proc.poll() is None, (tmp_path / "server.log").read_text()
                try:
                    if client.get("/health").json()["ready"]:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the server did not start in 180 s"
                time.sleep(0.2)
            assert len(_worker_processes(proc.pid)) == 2
            # new connections are spread over the workers: every answer must be the same
            bodies = []
            for _ in range(60):
                with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as fresh:
                    r = fresh.post(
                        "/v1/predict",
                        json={"items": [{"formula": f} for f in formulas], "targets": ["ionic_conductivity"]},
                    )
                assert r.status_code == 200, r.text
                bodies.append(r.json())
            assert all(b == bodies[0] for b in bodies)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()
    body = bodies[0]
    assert PredictResponse.model_validate(body).model_dump(mode="json") == body
    got = [x["predictions"]["ionic_conductivity"] for x in body["results"]]
    predictor = load_predictors([TargetName.IONIC_CONDUCTIVITY], served_settings.resolved_tracking_uri)[
        TargetName.IONIC_CONDUCTIVITY
    ]
    want = predictor.predict_frame(pd.DataFrame({"formula": formulas}))
    for answer, (_, row) in zip(got, want.iterrows(), strict=True):
        if row["error"]:
            assert answer["value"] is None and "Xy" in answer["error"]
            continue
        assert answer["value"] == row["prediction"] and answer["std"] == row["std"]  # bit for bit
        assert answer["lower_90"] == row["lower_90"] and answer["upper_90"] == row["upper_90"]
        assert answer["in_domain"] == bool(row["in_domain"])
        assert answer["domain_reason"] == row["domain_reason"]
