"""MLflow edge: the ONLY module that imports mlflow.

Every function takes the tracking URI explicitly (the CLI resolves ``--tracking-uri`` /
``MLFLOW_TRACKING_URI`` / the project default and passes it down), so nothing here reads the environment
for configuration and nothing lands in the current working directory:

- the embedded default store is ``sqlite:///<project root>/mlruns/mlflow.db`` and every experiment created
  against a SQLite store gets an explicit artifact location under ``<db dir>/artifacts/<experiment>``;
- against a tracking server the server decides where artifacts go.

Models are logged with the sklearn flavor in ``cloudpickle`` format (our estimators are custom classes that
skops refuses), with explicit ``pip_requirements`` (MLflow's inference is slow and pins local builds such as
``torch==2.13.0+cpu``) and an explicit signature. The chosen version of ``nascreen-<target>`` gets the alias
``champion``; serving loads ``models:/nascreen-<target>@champion``.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pandas as pd

from models.targets import TargetName, get_target

logger = logging.getLogger(__name__)

CHAMPION_ALIAS = "champion"
MODEL_ARTIFACT_NAME = "model"
EXPERIMENT_PREFIX = "nascreen-"
# Libraries whose versions are logged with every run and pinned in the model's requirements.
TRACKED_LIBRARIES = (
    "numpy",
    "pandas",
    "scipy",
    "scikit-learn",
    "torch",
    "pymatgen",
    "matminer",
    "mlflow",
    "cloudpickle",
)


def default_tracking_uri(project_root: Path) -> str:
    """The embedded store: SQLite under ``<project root>/mlruns`` (artifacts in ``mlruns/artifacts``)."""
    db = (Path(project_root).resolve() / "mlruns" / "mlflow.db").as_posix()
    return f"sqlite:///{db}"


def artifact_root(tracking_uri: str) -> Path | None:
    """Where artifacts go for a SQLite store (next to the database); None for a server store."""
    parsed = urlparse(tracking_uri)
    if parsed.scheme != "sqlite":
        return None
    # sqlite:////abs/path.db -> path "//abs/path.db"; sqlite:///rel.db -> "/rel.db" (relative to cwd).
    raw = unquote(tracking_uri[len("sqlite:///") :])
    db_path = Path(raw)
    return db_path.resolve().parent / "artifacts"


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries a model depends on ("not installed" when absent)."""
    versions: dict[str, str] = {}
    for name in TRACKED_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def pip_requirements() -> list[str]:
    """Pinned requirements for a logged model; local build labels stripped (torch 2.13.0+cpu -> 2.13.0)."""
    requirements = []
    for name, version in library_versions().items():
        if version == "not installed":
            continue
        requirements.append(f"{name}=={version.split('+', 1)[0]}")
    return requirements


def git_revision(project_root: Path) -> str | None:
    """The current git commit of the project (with '-dirty' when there are local changes), if available."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=project_root,
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=project_root,
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{rev}-dirty" if dirty else rev


@contextlib.contextmanager
def _store(tracking_uri: str) -> Iterator[Any]:
    """Point the fluent MLflow API at ``tracking_uri`` for the duration of the block, quietly."""
    import mlflow

    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # cloudpickle is chosen deliberately (module docstring); its per-call safety warning is noise here.
    logging.getLogger("mlflow.sklearn").setLevel(logging.ERROR)
    root = artifact_root(tracking_uri)
    if root is not None:
        root.parent.mkdir(parents=True, exist_ok=True)
    previous_tracking = mlflow.get_tracking_uri()
    previous_registry = mlflow.get_registry_uri()
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    try:
        with warnings.catch_warnings():
            # cloudpickle format is chosen deliberately (see module docstring); keep the logs readable.
            warnings.filterwarnings("ignore", message=".*pickle.*")
            warnings.filterwarnings("ignore", category=FutureWarning, module="mlflow")
            yield mlflow
    finally:
        mlflow.set_tracking_uri(previous_tracking)
        mlflow.set_registry_uri(previous_registry)


def _experiment_id(mlflow: Any, name: str, tracking_uri: str) -> str:
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    root = artifact_root(tracking_uri)
    location = (root / name).as_uri() if root is not None else None
    return str(mlflow.create_experiment(name, artifact_location=location))


def experiment_name(target: TargetName | str) -> str:
    return f"{EXPERIMENT_PREFIX}{get_target(target).name.value}"


def _flat_params(params: Mapping[str, object]) -> dict[str, str]:
    # MLflow params are strings of at most 6000 characters.
    return {str(k): str(v)[:6000] for k, v in params.items()}


def _finite_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        value = float(value)
        if value == value and abs(value) != float("inf"):
            out[key] = value
    return out


@dataclass(frozen=True)
class LoggedModel:
    """Where a training run put its model: run id and the model URI to register."""

    run_id: str
    model_uri: str


def log_training_run(
    *,
    tracking_uri: str,
    target: TargetName | str,
    model: Any,
    input_example: pd.DataFrame,
    params: Mapping[str, object],
    metrics: Mapping[str, float],
    figures: Mapping[str, bytes],
    model_card: str,
    tables: Mapping[str, pd.DataFrame] | None = None,
    tags: Mapping[str, str] | None = None,
    project_root: Path | None = None,
) -> LoggedModel:
    """Log one training run of ``target``: params (+ library versions, git revision), metrics, PNG figures,
    the model card, optional CSV tables, and the model (sklearn flavor, cloudpickle, explicit signature)."""
    with _store(tracking_uri) as mlflow:
        from mlflow.models import infer_signature

        exp_id = _experiment_id(mlflow, experiment_name(target), tracking_uri)
        all_params = dict(params)
        all_params.update({f"version.{k}": v for k, v in library_versions().items()})
        all_tags = {"nascreen.target": get_target(target).name.value, **(tags or {})}
        revision = git_revision(project_root) if project_root is not None else None
        if revision:
            all_tags["git_revision"] = revision
            all_params["git_revision"] = revision
        example = input_example.head(5).copy()
        for col in example.columns:  # integers cannot carry missing values in an MLflow schema
            if pd.api.types.is_integer_dtype(example[col]):
                example[col] = example[col].astype(float)
        signature = infer_signature(example, model.predict(example))
        with mlflow.start_run(experiment_id=exp_id) as run:
            mlflow.set_tags(all_tags)
            mlflow.log_params(_flat_params(all_params))
            mlflow.log_metrics(_finite_metrics(metrics))
            with tempfile.TemporaryDirectory() as tmp:
                tmp_path = Path(tmp)
                for name, png in figures.items():
                    (tmp_path / f"{name}.png").write_bytes(png)
                    mlflow.log_artifact(str(tmp_path / f"{name}.png"), artifact_path="plots")
                (tmp_path / "model_card.md").write_text(model_card, encoding="utf-8")
                mlflow.log_artifact(str(tmp_path / "model_card.md"))
                for name, table in (tables or {}).items():
                    table.to_csv(tmp_path / f"{name}.csv", index=False)
                    mlflow.log_artifact(str(tmp_path / f"{name}.csv"), artifact_path="tables")
            info = mlflow.sklearn.log_model(
                model,
                name=MODEL_ARTIFACT_NAME,
                serialization_format="cloudpickle",
                signature=signature,
                pip_requirements=pip_requirements(),
            )
            run_id = run.info.run_id
    logger.info("logged %s run %s (%s)", target, run_id, info.model_uri)
    return LoggedModel(run_id=run_id, model_uri=info.model_uri)


def register_champion(*, tracking_uri: str, target: TargetName | str, logged: LoggedModel) -> str:
    """Register the logged model as ``nascreen-<target>`` and point the ``champion`` alias at it.
    Returns the new version string."""
    name = get_target(target).registered_model_name
    with _store(tracking_uri) as mlflow:
        version = mlflow.register_model(logged.model_uri, name, tags={"run_id": logged.run_id})
        client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        client.set_registered_model_alias(name, CHAMPION_ALIAS, str(version.version))
    logger.info("registered %s version %s as @%s", name, version.version, CHAMPION_ALIAS)
    return str(version.version)


def _alias_version(client: Any, name: str, alias: str) -> str | None:
    """The version ``alias`` points at, None when it is not set."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def register_alias(*, tracking_uri: str, target: TargetName | str, logged: LoggedModel, alias: str) -> str:
    """Register the logged model as a new version of ``nascreen-<target>`` and point ``alias`` (never
    ``champion``) at it; the move is logged as tags (on the version and the run: previous -> new).
    Returns the new version string."""
    if alias == CHAMPION_ALIAS:
        raise ValueError(f"register_alias: {CHAMPION_ALIAS!r} is moved by training only (register_champion)")
    name = get_target(target).registered_model_name
    with _store(tracking_uri) as mlflow:
        client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        previous = _alias_version(client, name, alias) or "none"
        version = str(mlflow.register_model(logged.model_uri, name, tags={"run_id": logged.run_id}).version)
        client.set_registered_model_alias(name, alias, version)
        move = f"{alias}: {previous} -> {version}"
        client.set_model_version_tag(name, version, "nascreen.alias_move", move)
        client.set_tag(logged.run_id, "nascreen.alias_move", move)
    logger.info("registered %s version %s as @%s (was %s)", name, version, alias, previous)
    return version


def load_alias(target: TargetName | str, alias: str, tracking_uri: str) -> tuple[Any, str]:
    """Load ``models:/nascreen-<target>@<alias>``; returns (model, version string). LookupError when the
    alias is not set."""
    name = get_target(target).registered_model_name
    with _store(tracking_uri) as mlflow:
        client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        version = _alias_version(client, name, alias)
        if version is None:
            raise LookupError(f"no model registered as {name}@{alias} in {tracking_uri}")
        model = mlflow.sklearn.load_model(f"models:/{name}/{version}")
    return model, version


class NoChampionError(LookupError):
    """No ``champion`` version is registered for a target in the given store."""


def champion_version(target: TargetName | str, tracking_uri: str) -> str | None:
    """The champion's version string, or None when nothing is registered."""
    name = get_target(target).registered_model_name
    with _store(tracking_uri) as mlflow:
        from mlflow.exceptions import MlflowException

        client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        try:
            return str(client.get_model_version_by_alias(name, CHAMPION_ALIAS).version)
        except MlflowException:
            return None


def load_champion(target: TargetName | str, tracking_uri: str) -> tuple[Any, str]:
    """Load ``models:/nascreen-<target>@champion``; returns (model, version string)."""
    name = get_target(target).registered_model_name
    version = champion_version(target, tracking_uri)
    if version is None:
        raise NoChampionError(
            f"no model registered as {name}@{CHAMPION_ALIAS} in {tracking_uri}: run `nascreen train` first"
        )
    with _store(tracking_uri) as mlflow:
        # Load the exact version the alias resolved to, so model and version string cannot disagree.
        model = mlflow.sklearn.load_model(f"models:/{name}/{version}")
    return model, version


def log_run(
    experiment: str,
    params: Mapping[str, object],
    metrics: Mapping[str, float],
    artifacts: Mapping[str, Path],
    tags: Mapping[str, str],
    *,
    tracking_uri: str,
) -> str:
    """Generic run (e.g. a screening run): params, metrics, files as artifacts (key = artifact folder)."""
    with _store(tracking_uri) as mlflow:
        exp_id = _experiment_id(mlflow, experiment, tracking_uri)
        with mlflow.start_run(experiment_id=exp_id) as run:
            mlflow.set_tags(dict(tags))
            mlflow.log_params(_flat_params(params))
            mlflow.log_metrics(_finite_metrics(metrics))
            for folder, path in artifacts.items():
                path = Path(path)
                if path.is_dir():
                    mlflow.log_artifacts(str(path), artifact_path=folder)
                else:
                    mlflow.log_artifact(str(path), artifact_path=folder)
            return str(run.info.run_id)


def list_registered(tracking_uri: str) -> list[dict[str, Any]]:
    """Every version of every ``nascreen-*`` registered model: name, version, aliases, run id, created
    timestamp and the CV metrics of the run that produced it."""
    rows: list[dict[str, Any]] = []
    with _store(tracking_uri) as mlflow:
        client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        for registered in client.search_registered_models():
            if not registered.name.startswith(EXPERIMENT_PREFIX):
                continue
            aliases_by_version: dict[str, list[str]] = {}
            for alias, version in (registered.aliases or {}).items():
                aliases_by_version.setdefault(str(version), []).append(alias)
            for mv in client.search_model_versions(f"name='{registered.name}'"):
                run_id = mv.run_id or (mv.tags or {}).get("run_id")
                metrics: dict[str, float] = {}
                params: dict[str, str] = {}
                if run_id:
                    run = client.get_run(run_id)
                    metrics = dict(run.data.metrics)
                    params = dict(run.data.params)
                rows.append(
                    {
                        "name": registered.name,
                        "version": str(mv.version),
                        "aliases": sorted(aliases_by_version.get(str(mv.version), [])),
                        "run_id": run_id,
                        "created": pd.Timestamp(mv.creation_timestamp, unit="ms", tz="UTC"),
                        "model": params.get("model", ""),
                        "feature_set": params.get("feature_set", ""),
                        "metrics": metrics,
                    }
                )
    rows.sort(key=lambda r: (r["name"], -int(r["version"])))
    return rows
