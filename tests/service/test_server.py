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
