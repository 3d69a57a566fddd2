"""Shared fixtures: a small real model trained on the curated data and registered in a temporary store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

import models

PROJECT_ROOT = Path(models.__file__).resolve().parents[1]
DATA_DIR = PROJECT_ROOT / "data"


#: Fixtures that train and register real models: a test using one is ``mlflow`` and ``slow`` (left out of
#: ``make test-fast``) whether or not its module says so.
TRAINING_FIXTURES = frozenset(
    {"trained_retention_store", "served_tracking_uri", "served_settings", "client", "roomy_client"}
)


#: Fixtures that run the training pipeline (``train_on_table``) without a store: ``slow``.
SLOW_FIXTURES = frozenset({"retention_result"})
#: Fixtures that open a (temporary, SQLite) MLflow store: ``mlflow``.
MLFLOW_FIXTURES = frozenset({"empty_tracking_uri", "empty_client"})
#: Tests that take seconds each (matminer reference runs, re-curation of the data, full-data fits, the
#: sklearn estimator-contract battery): ``slow``, so ``make test-fast`` stays under a minute.
SLOW_TESTS = (
    "tests/models/test_training.py",
    "tests/models/test_data_lineage.py",
    "tests/models/test_mlp_ensemble.py",
    "tests/models/test_spread.py",
    "tests/featurize/test_reference_equality.py",
    "tests/featurize/test_composition_fast.py::test_curated_formulas_equal_reference",
    "tests/featurize/test_composition_fast.py::test_random_flat_formulas_equal_reference",
    "tests/models/test_uncertain.py::test_chemistry_class_rule",
    "tests/models/test_uncertain.py::test_out_of_fold_table",
    "tests/models/test_uncertain.py::test_intervals_cover",
    "tests/models/test_uncertain.py::test_mlp_ensemble_on_real_formulas",
    "tests/models/test_uncertain.py::test_same_random_state",
    # a process pool of 2 featurize workers started twice (15 s measured under load)
    "tests/service/test_cli_featurize.py::test_batches_and_jobs_give_the_same_bytes",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark by what a test uses, so the fast selection holds whoever wrote the test."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if TRAINING_FIXTURES & fixtures:
            item.add_marker(pytest.mark.mlflow)
            item.add_marker(pytest.mark.slow)
        if SLOW_FIXTURES & fixtures:
            item.add_marker(pytest.mark.slow)
        if MLFLOW_FIXTURES & fixtures:
            item.add_marker(pytest.mark.mlflow)
        if item.nodeid.startswith(SLOW_TESTS):
            item.add_marker(pytest.mark.slow)


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
    from models.champion import train_log_register
    from models.targets import TargetName
    from models.training import TrainingConfig

    root = tmp_path_factory.mktemp("mlstore")
    uri = tracking.default_tracking_uri(root)
    config = TrainingConfig(quick=True, n_splits=3)
    champion = train_log_register(
        TargetName.CAPACITY_RETENTION, DATA_DIR, config, tracking_uri=uri, with_tables=False
    )
    version = champion.version
    return TrainedStore(tracking_uri=uri, root=root, version=version)
