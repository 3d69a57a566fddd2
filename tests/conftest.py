"""Shared fixtures: a small real model trained on the curated data and registered in a temporary store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

import models

PROJECT_ROOT = Path(models.__file__).resolve().parents[1]
DATA_DIR = PROJECT_ROOT / "data"


@dataclass(frozen=True)
class TrainedStore:
    """A temporary SQLite MLflow store with a quick capacity_retention champion registered."""

    tracking_uri: str
    root: Path
    version: str


@pytest.fixture(scope="session")
def trained_retention_store(tmp_path_factory: pytest.TempPathFactory) -> TrainedStore:
    """Tiny forest on the real curated retention table, logged + registered as the champion."""
    from models import tracking
    from models.targets import TargetName
    from models.training import TrainingConfig, train_target

    root = tmp_path_factory.mktemp("mlstore")
    uri = tracking.default_tracking_uri(root)
    result = train_target(TargetName.CAPACITY_RETENTION, DATA_DIR, TrainingConfig(quick=True, n_splits=3))
    logged = tracking.log_training_run(
        tracking_uri=uri,
        target=TargetName.CAPACITY_RETENTION,
        model=result.model,
        input_example=result.input_example,
        params=result.params(),
        metrics=result.flat_metrics(),
        figures=result.figures,
        model_card=result.model_card,
    )
    version = tracking.register_champion(
        tracking_uri=uri, target=TargetName.CAPACITY_RETENTION, logged=logged
    )
    return TrainedStore(tracking_uri=uri, root=root, version=version)
