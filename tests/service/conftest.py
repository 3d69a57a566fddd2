"""Fixtures for the HTTP API tests: settings in a temp project root, an app on an empty MLflow store,
and an app on a store holding real trained champion models."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.api.settings import ApiSettings

SettingsFactory = Callable[..., ApiSettings]


@pytest.fixture(scope="session")
def empty_tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An MLflow SQLite store with no registered models (created on first use)."""
    root = tmp_path_factory.mktemp("mlflow-empty")
    return f"sqlite:///{root / 'mlflow.db'}"


@pytest.fixture
def make_settings(tmp_path: Path) -> SettingsFactory:
    def build(**overrides: Any) -> ApiSettings:
        values: dict[str, Any] = {"project_root": tmp_path, "job_executor": "local"}
        values.update(overrides)
        return ApiSettings.model_validate(values)

    return build


@pytest.fixture
def empty_client(make_settings: SettingsFactory, empty_tracking_uri: str) -> Iterator[TestClient]:
    """The app with no champion models (not ready), local job executor, temp job store."""
    with TestClient(create_app(make_settings(tracking_uri=empty_tracking_uri))) as client:
        yield client


# --------------------------------------------------------------------------------------------------------
# Real models: a conductivity and a retention champion trained (quick settings) on the shipped curated
# data and registered in a temporary SQLite MLflow store, once per session.
API_TARGETS = ("ionic_conductivity", "capacity_retention")


@pytest.fixture(scope="session")
def served_tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    from models import tracking
    from models.champion import train_log_register
    from models.training import TrainingConfig

    data_dir = Path(__file__).resolve().parents[2] / "data"
    root = tmp_path_factory.mktemp("api-mlstore")
    uri = tracking.default_tracking_uri(root)
    config = TrainingConfig(quick=True, n_splits=3, studies=False)
    for name in API_TARGETS:
        train_log_register(name, data_dir, config, tracking_uri=uri, with_tables=False)
    return uri


@pytest.fixture(scope="module")
def served_settings(tmp_path_factory: pytest.TempPathFactory, served_tracking_uri: str) -> ApiSettings:
    """Settings for an app on the trained store, with small limits so the limit paths are cheap to hit."""
    return ApiSettings(
        project_root=tmp_path_factory.mktemp("api-project"),
        tracking_uri=served_tracking_uri,
        targets=API_TARGETS,  # type: ignore[arg-type]
        job_executor="local",
        max_rank_candidates=40,
        max_fraction_grid=10,
        max_job_candidates=5000,
        chunk_size=5,
        top_k=5,
    )


@pytest.fixture(scope="module")
def client(served_settings: ApiSettings) -> Iterator[TestClient]:
    """One app (models loaded once) per test module."""
    with TestClient(create_app(served_settings)) as test_client:
        yield test_client
