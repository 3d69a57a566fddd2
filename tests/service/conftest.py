"""Fixtures for the HTTP API tests: settings in a temp project root, an app on an empty MLflow store,
an app answering with small fitted models (no MLflow, no training run) and an app on a store holding real
trained champion models.

Most API tests exercise HTTP behaviour (validation, limits, per-item errors, jobs, restarts) and need a
model that answers like a champion, not the champion itself: ``fitted_client`` serves real
``UncertainRegressor`` models (a 10-tree forest on a 200-row sample of the curated tables, grouped CV and
all) through a FastAPI dependency override of the app state, so those tests neither train champions nor
open an MLflow store. Tests where the trained champion or the registry matters (``/v1/models``, the real
server, the CLI) keep ``client`` / ``served_tracking_uri``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from models.predictor import Predictor, PredictorLike
from models.targets import TargetName
from service.api.app import create_app
from service.api.deps import get_state
from service.api.settings import ApiSettings
from service.api.state import build_state

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


# --------------------------------------------------------------------------------------------------------
# Small fitted models behind a dependency override: real estimators, no MLflow store, no champion training.
FITTED_VERSION = "1"
FITTED_ROWS = 200


def fitted_predictor(target: TargetName | str, *, rows: int = FITTED_ROWS) -> Predictor:
    """A real model for ``target``: the training code's own ``fit_uncertain`` (grouped CV, conformal
    intervals, applicability domain) with a 10-tree forest on a seeded sample of the curated table."""
    from sklearn.ensemble import RandomForestRegressor

    from models.data import load_curated
    from models.training import Candidate, TrainingConfig, fit_uncertain, training_frame

    name = TargetName(target)
    data_dir = Path(__file__).resolve().parents[2] / "data"
    table = load_curated(name, data_dir)
    table = table.sample(n=min(rows, len(table)), random_state=0).reset_index(drop=True)
    X, y, groups, _, _ = training_frame(name, table)
    forest = RandomForestRegressor(
        n_estimators=10, min_samples_leaf=2, max_features=0.3, n_jobs=1, random_state=0
    )
    config = TrainingConfig(n_splits=3, n_jobs=1)
    model = fit_uncertain(name, Candidate("random_forest", "magpie_v1", forest), X, y, groups, config)
    return Predictor(target=name, model=model, model_version=FITTED_VERSION)


@pytest.fixture(scope="session")
def fitted_predictors() -> dict[TargetName, PredictorLike]:
    """A conductivity and a retention model, fitted once per session (a few seconds, no MLflow)."""
    return {TargetName(t): fitted_predictor(t) for t in API_TARGETS}


@contextmanager
def fitted_app(
    settings: ApiSettings, predictors: Mapping[TargetName, PredictorLike], **client_args: Any
) -> Iterator[TestClient]:
    """The app for ``settings`` with its state (job store, job manager, compute) built around
    ``predictors`` and handed to every route through ``app.dependency_overrides[get_state]``. The
    lifespan (which would load champions from the tracking store) is not run; leaving the block closes
    the state as the lifespan would, so a second ``fitted_app`` on the same settings is a restart."""
    app = create_app(settings)
    state = build_state(settings, predictors=predictors)

    async def fitted_state() -> Any:
        return state

    app.dependency_overrides[get_state] = fitted_state
    try:
        yield TestClient(app, **client_args)  # not entered: no lifespan
    finally:
        state.close()


FittedApp = Callable[..., Any]


@pytest.fixture(scope="session")
def make_fitted_app(fitted_predictors: dict[TargetName, PredictorLike]) -> FittedApp:
    """``make_fitted_app(settings)``: a ``fitted_app`` context on the session's fitted models."""

    def build(settings: ApiSettings, **client_args: Any) -> Any:
        return fitted_app(settings, fitted_predictors, **client_args)

    return build


@pytest.fixture(scope="module")
def fitted_settings(tmp_path_factory: pytest.TempPathFactory) -> ApiSettings:
    """``served_settings`` without a store: the same small limits, a tracking URI nothing opens."""
    root = tmp_path_factory.mktemp("api-fitted")
    return ApiSettings(
        project_root=root,
        tracking_uri=f"sqlite:///{root / 'never-opened.db'}",
        targets=API_TARGETS,  # type: ignore[arg-type]
        job_executor="local",
        max_rank_candidates=40,
        max_fraction_grid=10,
        max_job_candidates=5000,
        chunk_size=5,
        top_k=5,
    )


@pytest.fixture(scope="module")
def fitted_client(
    fitted_settings: ApiSettings, fitted_predictors: dict[TargetName, PredictorLike]
) -> Iterator[TestClient]:
    """One app on the fitted models per test module."""
    with fitted_app(fitted_settings, fitted_predictors) as test_client:
        yield test_client
