"""`nascreen train`, `nascreen models`: training and the registry (`predict` is in service/cli/predict.py).

The MLflow store defaults to sqlite:///<project root>/mlruns/mlflow.db; `--tracking-uri` or the
MLFLOW_TRACKING_URI environment variable (read here, at the edge, and passed down) point elsewhere.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

import models

if TYPE_CHECKING:
    import pandas as pd

PROJECT_ROOT = Path(models.__file__).resolve().parents[1]
DEFAULT_DATA_DIR = PROJECT_ROOT / "data"
ALL = "all"
# What the console shows of a study table (the full tables are logged to MLflow).
STUDY_COLUMNS = (
    "training",
    "model",
    "test rows",
    "formula",
    "cycles",
    "n",
    "mae",
    "mae_minus_na_only",
    "paired_se",
    "measured",
    "prediction",
    "lower_90",
    "upper_90",
    "in_domain",
    "domain_reason",
)

TrackingOption = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        envvar="MLFLOW_TRACKING_URI",
        help="MLflow tracking URI (default: sqlite:///<project root>/mlruns/mlflow.db).",
    ),
]
DataDirOption = Annotated[
    Path,
    typer.Option(
        "--data-dir", envvar="NASCREEN_DATA_DIR", file_okay=False, help="Data directory (curated/)."
    ),
]


def resolve_tracking_uri(uri: str | None) -> str:
    from models.tracking import default_tracking_uri

    return uri or default_tracking_uri(PROJECT_ROOT)


def _targets(target: str) -> list[Any]:
    from models.targets import TargetName, get_target

    if target == ALL:
        return list(TargetName)
    try:
        return [get_target(target).name]
    except ValueError as exc:
        raise typer.BadParameter(f"{exc} (or '{ALL}')", param_hint="--target") from None


def _fmt(value: object, digits: int = 3) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def metrics_rich_table(title: str, frame: Any) -> Any:
    from rich.table import Table

    table = Table(title=title)
    cols = [
        c
        for c in ("scope", "model", "n", "mae", "rmse", "r2", "spearman", "coverage_90")
        if c in frame.columns
    ]
    for col in cols:
        table.add_column(col, justify="left" if col in ("scope", "model") else "right")
    for _, row in frame.iterrows():
        table.add_row(*[_fmt(row[c]) for c in cols])
    return table


def train_and_register(
    targets: list[Any],
    *,
    tracking_uri: str,
    data_dir: Path,
    quick: bool = False,
    console: Any = None,
) -> dict[Any, Any]:
    """Train, log and register each target; returns {target: TrainingResult}. Used by `train` and `demo`."""
    from rich.console import Console

    from models.champion import train_log_register
    from models.training import TrainingConfig

    console = console or Console()
    results = {}
    for target in targets:
        with console.status(f"training {target.value} ...") as status:

            def progress(message: str, status: Any = status) -> None:
                status.update(message)
                console.log(message)

            champion = train_log_register(
                target,
                data_dir,
                TrainingConfig(quick=quick),
                tracking_uri=tracking_uri,
                project_root=PROJECT_ROOT,
                progress=progress,
            )
            result, version = champion.result, champion.version
        console.print(
            metrics_rich_table(
                f"{target.value}: {result.candidate.name} on {result.candidate.feature_set}, grouped CV "
                f"({result.seconds:.0f} s) -> nascreen-{target.value} v{version} @champion",
                result.metrics,
            )
        )
        for name, table in result.studies.items():
            if len(table):
                console.print(f"[bold]{name}[/bold]")
                shown = table[_shown_columns(table)]
                console.print(shown.to_string(index=False, float_format=lambda x: f"{x:.3g}"), soft_wrap=True)
        results[target] = result
    return results


def _shown_columns(table: pd.DataFrame) -> list[str]:
    """The console columns of a study table: the known ones it has, else its own first eight (a table such
    as within_study or seed_contrast has none of STUDY_COLUMNS and printed as an empty frame)."""
    known = [c for c in STUDY_COLUMNS if c in table.columns]
    return known or [c for c in table.columns if c != "metric_key"][:8]


def train(
    target: Annotated[
        str,
        typer.Option(
            "--target", "-t", help="ionic_conductivity | capacity_retention | average_voltage | all"
        ),
    ] = ALL,
    tracking_uri: TrackingOption = None,
    data_dir: DataDirOption = DEFAULT_DATA_DIR,
    quick: Annotated[
        bool, typer.Option("--quick", help="Tiny search (smoke test), not for real use.")
    ] = False,
) -> None:
    """Train, evaluate (grouped CV vs dummy), log to MLflow and register the champion per target."""
    from rich.console import Console

    console = Console()
    start = time.perf_counter()
    train_and_register(
        _targets(target),
        tracking_uri=resolve_tracking_uri(tracking_uri),
        data_dir=data_dir,
        quick=quick,
        console=console,
    )
    console.print(f"done in {time.perf_counter() - start:.0f} s")


def list_models(tracking_uri: TrackingOption = None) -> None:
    """Registered models, versions, aliases and their CV metrics."""
    from rich.console import Console
    from rich.table import Table

    from models.tracking import list_registered

    uri = resolve_tracking_uri(tracking_uri)
    rows = list_registered(uri)
    console = Console()
    if not rows:
        console.print(f"no registered models in {uri}: run `nascreen train`")
        return
    table = Table(title=f"registered models in {uri}")
    for col in (
        "name",
        "version",
        "aliases",
        "model",
        "feature set",
        "CV MAE",
        "dummy MAE",
        "R2",
        "cov90",
        "created",
    ):
        table.add_column(col)
    for r in rows:
        m = r["metrics"]
        table.add_row(
            r["name"],
            r["version"],
            ",".join(r["aliases"]),
            r["model"],
            r["feature_set"],
            _fmt(m.get("cv_mae", float("nan"))),
            _fmt(m.get("dummy_mae", float("nan"))),
            _fmt(m.get("cv_r2", float("nan"))),
            _fmt(m.get("cv_coverage_90", float("nan")), 2),
            r["created"].strftime("%Y-%m-%d %H:%M"),
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("models")(list_models)
