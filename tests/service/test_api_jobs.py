"""Screening jobs through the API (in-process executor): submit, poll, download, cancel, restart; on small
fitted models (``fitted_client``, a restart is a second ``make_fitted_app`` on the same settings and job
store), so no champion is trained for them."""

from __future__ import annotations

import io
import time
from typing import Any

import pandas as pd
from fastapi.testclient import TestClient

from service.api.settings import ApiSettings

FittedApp = Any

SPEC: dict[str, Any] = {
    "name": "api-nasicon",
    "family": "nasicon",
    "host": "Na3Zr2Si2PO12",
    "site": "Zr",
    "dopants": ["Hf", "Ti", "Sn"],
    "fractions": [0.05, 0.1, 0.2],
    "compensation": "na_content",
    "ranking": {"mode": "value", "objectives": ["ionic_conductivity"]},
}


def wait_finished(client: TestClient, job_id: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get(f"/v1/screening-jobs/{job_id}").json()
        if body["status"] not in ("queued", "running"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


def test_a_job_runs_to_completion_and_its_table_downloads(fitted_client: TestClient) -> None:
    r = fitted_client.post("/v1/screening-jobs", json=SPEC)
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] in ("queued", "running") and job["progress"]["total"] == 10

    done = wait_finished(fitted_client, job["id"])
    assert done["status"] == "succeeded", done
    assert done["progress"] == {"done": 10, "total": 10, "fraction": 1.0}
    assert done["counts"]["generated"] == 10
    top = done["top_k"]
    assert 0 < len(top) <= 5 and top[0]["rank"] == 1
    assert "ionic_conductivity_prediction" in top[0]

    csv = fitted_client.get(done["results"]["csv"])
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    table = pd.read_csv(io.StringIO(csv.text))
    assert (
        len(table)
        == done["counts"]["generated"]
        - done["counts"]["rejected_neutrality"]
        - done["counts"]["rejected_other"]
    )
    assert table["formula"].iloc[0] == top[0]["formula"]
    parquet = fitted_client.get(f"/v1/screening-jobs/{job['id']}/results", params={"format": "parquet"})
    assert parquet.status_code == 200
    from_parquet = pd.read_parquet(io.BytesIO(parquet.content))
    assert list(from_parquet["formula"]) == list(table["formula"])

    listed = fitted_client.get("/v1/screening-jobs").json()["jobs"]
    assert job["id"] in [j["id"] for j in listed]


def test_an_invalid_spec_is_422_with_the_spec_error(fitted_client: TestClient) -> None:
    r = fitted_client.post("/v1/screening-jobs", json={**SPEC, "dopants": ["Xy"]})
    assert r.status_code == 422
    assert "Xy" in r.json()["detail"]
    r = fitted_client.post("/v1/screening-jobs", json=["not", "a", "mapping"])
    assert r.status_code == 422


def test_a_spec_over_the_job_cap_is_413(fitted_client: TestClient) -> None:
    grid = [0.01 * i for i in range(1, 11)]
    big = {  # 72,901 candidates; this server allows 5,000 per job
        **SPEC,
        "dopants": "transition_metals",
        "fractions": grid,
        "codoping": {"dopants": "transition_metals", "fractions": grid},
    }
    r = fitted_client.post("/v1/screening-jobs", json=big)
    assert r.status_code == 413, r.text
    assert "72901 candidates" in r.json()["detail"]


def test_a_running_job_shows_top_k_so_far_and_cancel_stops_it(fitted_client: TestClient) -> None:
    # 271 candidates in chunks of 5: 55 chunks, so the job is still running well after its first chunk
    many = {
        **SPEC,
        "name": "api-cancel",
        "dopants": "transition_metals",
        "fractions": [0.02 * i for i in range(1, 11)],
    }
    job = fitted_client.post("/v1/screening-jobs", json=many).json()
    queued = fitted_client.post(
        "/v1/screening-jobs", json=many
    ).json()  # behind the first (one job at a time)

    r = fitted_client.delete(f"/v1/screening-jobs/{queued['id']}")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"

    deadline = time.monotonic() + 60
    while True:
        status = fitted_client.get(f"/v1/screening-jobs/{job['id']}").json()
        if status["status"] == "running" and status["progress"]["done"] > 0:
            break
        assert status["status"] in ("queued", "running") and time.monotonic() < deadline, status
        time.sleep(0.005)
    # progress and the best candidates of the chunks finished so far are visible while it runs
    assert 0 < status["progress"]["done"] < status["progress"]["total"] == 271
    assert status["top_k"] and status["top_k"][0]["rank"] == 1

    r = fitted_client.delete(f"/v1/screening-jobs/{job['id']}")
    assert r.status_code == 200
    finished = wait_finished(fitted_client, job["id"])
    assert finished["status"] == "cancelled" and finished["error"] == "cancelled by request"
    assert finished["progress"]["done"] < finished["progress"]["total"]
    assert fitted_client.get(f"/v1/screening-jobs/{job['id']}/results").status_code == 409
    assert fitted_client.delete(f"/v1/screening-jobs/{job['id']}").status_code == 200  # idempotent

    never_ran = wait_finished(fitted_client, queued["id"])
    assert never_ran["status"] == "cancelled" and never_ran["started_at"] is None


def test_records_and_results_survive_a_restart(
    fitted_client: TestClient, fitted_settings: ApiSettings, make_fitted_app: FittedApp
) -> None:
    job = fitted_client.post("/v1/screening-jobs", json={**SPEC, "name": "api-restart"}).json()
    done = wait_finished(fitted_client, job["id"])
    assert done["status"] == "succeeded"
    before = fitted_client.get(done["results"]["csv"]).text

    with make_fitted_app(fitted_settings) as restarted:
        again = restarted.get(f"/v1/screening-jobs/{job['id']}").json()
        assert again["status"] == "succeeded" and again["top_k"] == done["top_k"]
        assert restarted.get(done["results"]["csv"]).text == before


def test_a_job_interrupted_by_a_restart_resumes_from_its_finished_chunks(
    fitted_client: TestClient, fitted_settings: ApiSettings, make_fitted_app: FittedApp
) -> None:
    many = {**SPEC, "name": "api-resume", "dopants": "transition_metals", "fractions": [0.05, 0.1, 0.2]}
    with make_fitted_app(fitted_settings) as first:
        job = first.post("/v1/screening-jobs", json=many).json()
        deadline = time.monotonic() + 60
        while first.get(f"/v1/screening-jobs/{job['id']}").json()["progress"]["done"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.005)
    # leaving the context stops the server: the job stops at its next chunk and is marked interrupted
    with make_fitted_app(fitted_settings) as second:
        stopped = second.get(f"/v1/screening-jobs/{job['id']}").json()
        assert stopped["status"] == "interrupted", stopped
        assert second.post(f"/v1/screening-jobs/{job['id']}/resume").status_code == 202
        done = wait_finished(second, job["id"])
        assert done["status"] == "succeeded" and done["progress"]["done"] == done["progress"]["total"]
        table = pd.read_csv(io.StringIO(second.get(done["results"]["csv"]).text))
        assert table["formula"].is_unique and len(table) > 0
        again = second.post(f"/v1/screening-jobs/{job['id']}/resume")
        assert again.status_code == 409 and "succeeded" in again.json()["detail"]
    fresh = fitted_client.post("/v1/screening-jobs", json={**many, "name": "api-resume-fresh"}).json()
    reference = wait_finished(fitted_client, fresh["id"])
    assert reference["counts"] == done["counts"] and reference["top_k"] == done["top_k"]
