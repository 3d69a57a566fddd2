"""App-level behaviour that needs no model: readiness, limits, request ids, logs, auth, docs, 404s."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.api.job_store import JobStatus, JobStore
from service.api.settings import ApiSettings

SettingsFactory = Callable[..., ApiSettings]


def test_health_reports_not_ready_without_models(empty_client: TestClient) -> None:
    r = empty_client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "not_ready" and body["ready"] is False
    assert body["models"] == {}
    assert set(body["missing"]) == {"ionic_conductivity", "capacity_retention", "average_voltage"}
    assert "nascreen train" in body["missing"]["ionic_conductivity"]


def test_models_lists_nothing_on_an_empty_registry(empty_client: TestClient) -> None:
    r = empty_client.get("/v1/models")
    assert r.status_code == 200
    assert r.json() == {"models": []}


def test_predict_without_a_model_is_503_naming_the_target(empty_client: TestClient) -> None:
    r = empty_client.post(
        "/v1/predict", json={"items": [{"formula": "Na3Zr2Si2PO12"}], "targets": ["ionic_conductivity"]}
    )
    assert r.status_code == 503
    assert "ionic_conductivity" in r.json()["detail"]


@pytest.mark.parametrize(
    ("body", "loc", "msg"),
    [
        (
            {
                "items": [{"formula": "NaCl"}, {"formula": "KCl", "cycles": -3}],
                "targets": ["capacity_retention"],
            },
            ["body", "items", 1, "cycles"],
            "must be > 0",  # models.conditions.check_condition: the spec parser's words
        ),
        (
            {"items": [{"formula": "NaCl", "colour": "red"}], "targets": ["ionic_conductivity"]},
            ["body", "items", 0, "colour"],
            "Extra inputs",
        ),
        (
            {"items": [{"formula": ""}], "targets": ["ionic_conductivity"]},
            ["body", "items", 0, "formula"],
            "at least 1",
        ),
        (
            {"items": [{"formula": "NaCl"}], "targets": ["band_gap"]},
            ["body", "targets", 0],
            "ionic_conductivity",
        ),
        ({"items": [], "targets": ["ionic_conductivity"]}, ["body", "items"], "at least 1"),
        (
            {"items": [{"formula": "NaCl"}], "targets": ["average_voltage", "average_voltage"]},
            ["body", "targets"],
            "must not repeat",
        ),
    ],
)
def test_schema_violations_are_422_naming_item_and_field(
    empty_client: TestClient, body: dict[str, object], loc: list[object], msg: str
) -> None:
    r = empty_client.post("/v1/predict", json=body)
    assert r.status_code == 422
    problems = r.json()["detail"]
    assert any(p["loc"] == loc and msg in p["msg"] for p in problems), problems


def test_malformed_json_is_422(empty_client: TestClient) -> None:
    r = empty_client.post("/v1/predict", content=b'{"items": [', headers={"content-type": "application/json"})
    assert r.status_code == 422


def test_body_over_the_limit_is_413_from_content_length(
    make_settings: SettingsFactory, empty_tracking_uri: str
) -> None:
    app = create_app(make_settings(tracking_uri=empty_tracking_uri, max_body_bytes=2048))
    with TestClient(app) as client:
        items = [{"formula": f"Na{i}Cl"} for i in range(200)]
        r = client.post("/v1/predict", json={"items": items, "targets": ["ionic_conductivity"]})
        assert r.status_code == 413
        assert "2048" in r.json()["detail"]
        assert r.headers["x-request-id"]


def test_streamed_body_over_the_limit_is_413(make_settings: SettingsFactory, empty_tracking_uri: str) -> None:
    app = create_app(make_settings(tracking_uri=empty_tracking_uri, max_body_bytes=2048))

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer
        yield b'{"items": ['
        for i in range(300):
            yield b'{"formula": "NaCl"},' if i < 299 else b'{"formula": "NaCl"}'
        yield b'], "targets": ["ionic_conductivity"]}'

    with TestClient(app) as client:
        r = client.post("/v1/predict", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413


def test_too_many_items_is_413(make_settings: SettingsFactory, empty_tracking_uri: str) -> None:
    app = create_app(make_settings(tracking_uri=empty_tracking_uri, max_items_per_request=3))
    with TestClient(app) as client:
        r = client.post(
            "/v1/predict", json={"items": [{"formula": "NaCl"}] * 4, "targets": ["ionic_conductivity"]}
        )
        assert r.status_code == 413
        assert "limit of 3" in r.json()["detail"]


def test_request_id_is_assigned_or_kept_and_logged_as_json(
    empty_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="nascreen.api.access"):
        generated = empty_client.get("/health").headers["x-request-id"]
        kept = empty_client.get("/health", headers={"X-Request-ID": "lims-42"}).headers["x-request-id"]
        replaced = empty_client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert len(generated) == 32 and kept == "lims-42"
    assert replaced.headers["x-request-id"] != "bad id\twith spaces"
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "nascreen.api.access"]
    assert [ln["request_id"] for ln in lines[:2]] == [generated, "lims-42"]
    first = lines[0]
    assert first["method"] == "GET" and first["path"] == "/health" and first["status"] == 200
    assert isinstance(first["duration_ms"], float) and first["duration_ms"] >= 0


def test_unknown_job_is_404_and_a_non_uuid_is_422(empty_client: TestClient) -> None:
    missing = uuid.uuid4()
    assert empty_client.get(f"/v1/screening-jobs/{missing}").status_code == 404
    assert empty_client.get(f"/v1/screening-jobs/{missing}/results").status_code == 404
    assert empty_client.delete(f"/v1/screening-jobs/{missing}").status_code == 404
    assert empty_client.get("/v1/screening-jobs/..%2F..%2Fetc%2Fpasswd").status_code in (404, 422)
    assert empty_client.get("/v1/screening-jobs/not-a-uuid").status_code == 422


def test_results_format_is_validated(empty_client: TestClient) -> None:
    r = empty_client.get(f"/v1/screening-jobs/{uuid.uuid4()}/results", params={"format": "pickle"})
    assert r.status_code == 422


def test_api_key_protects_submission_and_cancellation(
    make_settings: SettingsFactory, empty_tracking_uri: str
) -> None:
    settings = make_settings(tracking_uri=empty_tracking_uri, api_key="k3y")
    job = JobStore(settings.resolved_jobs_db).create({"name": "x"}, 1)  # a queued job to cancel
    with TestClient(create_app(settings)) as client:
        spec = {
            "name": "s",
            "family": "nasicon",
            "host": "Na3Zr2Si2PO12",
            "site": "Zr",
            "dopants": ["Hf"],
            "fractions": [0.1],
        }
        assert client.post("/v1/screening-jobs", json=spec).status_code == 401
        assert client.post("/v1/screening-jobs", json=spec, headers={"X-API-Key": "wrong"}).status_code == 401
        assert client.delete(f"/v1/screening-jobs/{job.id}").status_code == 401
        # reads stay open
        r = client.get(f"/v1/screening-jobs/{job.id}")
        assert r.status_code == 200
        # the job from "before the restart" was marked interrupted at start-up
        assert r.json()["status"] == JobStatus.INTERRUPTED.value
        assert client.delete(f"/v1/screening-jobs/{job.id}", headers={"X-API-Key": "k3y"}).status_code == 409


def test_cors_is_off_by_default_and_on_when_configured(
    empty_client: TestClient, make_settings: SettingsFactory, empty_tracking_uri: str
) -> None:
    pre = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    r = empty_client.options("/v1/predict", headers=pre)
    assert "access-control-allow-origin" not in r.headers
    app = create_app(make_settings(tracking_uri=empty_tracking_uri, cors_origins=["https://lab.example"]))
    with TestClient(app) as client:
        ok = client.options("/v1/predict", headers={**pre, "Origin": "https://lab.example"})
        assert ok.headers["access-control-allow-origin"] == "https://lab.example"
        bad = client.get("/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in bad.headers


def test_openapi_documents_every_endpoint_with_examples(empty_client: TestClient) -> None:
    spec = empty_client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/health",
        "/v1/models",
        "/v1/predict",
        "/v1/rank-dopants",
        "/v1/screening-jobs",
        "/v1/screening-jobs/{job_id}",
        "/v1/screening-jobs/{job_id}/results",
    ):
        assert path in paths, path
    predict_body = paths["/v1/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert "Na3Zr2Si2PO12" in json.dumps(predict_body["examples"])
    assert empty_client.get("/docs").status_code == 200


def test_a_job_needing_an_unloaded_model_is_503_not_queued(empty_client: TestClient) -> None:
    spec = {
        "name": "s",
        "family": "nasicon",
        "host": "Na3Zr2Si2PO12",
        "site": "Zr",
        "dopants": ["Hf"],
        "fractions": [0.1],
        "compensation": "na_content",
    }
    r = empty_client.post("/v1/screening-jobs", json=spec)
    assert r.status_code == 503
    assert "ionic_conductivity" in r.json()["detail"]
    assert empty_client.get("/v1/screening-jobs").json()["jobs"] == []
