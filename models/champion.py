"""Train -> log -> register, once: the one way a champion model comes to be (``nascreen train``, ``nascreen
screen --train-if-missing``, ``nascreen demo`` and the test fixtures all call ``train_log_register``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from models import tracking
from models.targets import TargetName
from models.training import Progress, TrainingConfig, TrainingResult, train_target

__all__ = ["RegisteredChampion", "train_log_register"]


@dataclass(frozen=True)
class RegisteredChampion:
    """A trained model, its MLflow run and the registry version now holding the ``champion`` alias."""

    result: TrainingResult
    logged: tracking.LoggedModel
    version: str


def train_log_register(
    target: TargetName | str,
    data_dir: Path,
    config: TrainingConfig | None = None,
    *,
    tracking_uri: str,
    project_root: Path | None = None,
    with_tables: bool = True,
    progress: Progress | None = None,
) -> RegisteredChampion:
    """Train ``target`` on the curated data, log the run (figures, model card and, ``with_tables``, the
    metrics/selection/out-of-fold/study tables) and register it as the champion."""
    name = TargetName(target)
    result = train_target(name, data_dir, config, progress=progress)
    if progress is not None:
        progress(f"{name.value}: logging to MLflow")
    tables = {"metrics": result.metrics, "selection": result.selection, "oof": result.oof, **result.studies}
    logged = tracking.log_training_run(
        tracking_uri=tracking_uri,
        target=name,
        model=result.model,
        input_example=result.input_example,
        params=result.params(),
        metrics=result.flat_metrics(),
        figures=result.figures,
        model_card=result.model_card,
        tables=tables if with_tables else None,
        project_root=project_root,
    )
    version = tracking.register_champion(tracking_uri=tracking_uri, target=name, logged=logged)
    return RegisteredChampion(result=result, logged=logged, version=str(version))
