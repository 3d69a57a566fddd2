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
