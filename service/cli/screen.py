"""`nascreen screen SPEC`: generate, score and rank a candidate space on local Ray (default), an existing
Ray cluster (--address / RAY_ADDRESS) or in one process (--executor local); write the ranked and rejected
tables, plots and a summary under --out, log the screen to MLflow and print the top candidates.

Environment variables are read here (the edge) and passed down: RAY_ADDRESS, MLFLOW_TRACKING_URI.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer

from service.cli.models import (
    DEFAULT_DATA_DIR,
    PROJECT_ROOT,
    DataDirOption,
    TrackingOption,
    resolve_tracking_uri,
)

SCREENING_EXPERIMENT = "nascreen-screening"
EXECUTORS = ("ray", "local")


def _fmt(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.3g}"
    return "-" if value is None else str(value)


def _top_rich_table(top: Any, targets: list[str], units: dict[str, str], title: str) -> Any:
    """Compact enough for an 80-column terminal: mean +- std per target (intervals are in top.csv)."""
    from rich.table import Table

    from screening.schema import Field, column

    table = Table(title=title, title_justify="left")
    for col in ("#", "formula", "dopant", "x"):
        table.add_column(col, justify="right" if col in ("#", "x") else "left", no_wrap=col == "formula")
    short = {"average_voltage": "V", "capacity_retention": "retention", "ionic_conductivity": "log10 sigma"}
    for t in targets:
        table.add_column(f"{short.get(t, t)} ({units[t]})", justify="right", no_wrap=True)
        table.add_column("dom", justify="center")
    table.add_column("score", justify="right")
    for _, row in top.iterrows():
        cells = [_fmt(row["rank"]), str(row["formula"]), str(row["dopant"]), _fmt(float(row["fraction"]))]
        for t in targets:
            cells.append(f"{row[column(t, Field.PREDICTION)]:.3g} +- {row[column(t, Field.STD)]:.2g}")
            cells.append(_fmt(bool(row[column(t, Field.IN_DOMAIN)])))
        cells.append(_fmt(float(row["score"])))
        table.add_row(*cells)
    return table


def _model_elements_if_asked(spec_path: Path, tracking_uri: str) -> frozenset[str] | None:
    """For a spec whose dopants are "every element the model knows": the elements every champion of the
    spec's family was trained on (their intersection). None when the spec does not ask, so nothing loads."""
    from models.tracking import load_champion
    from screening.spec import FAMILIES, MODEL_ELEMENTS_GROUP, SpecError
    from screening.spec_io import read_spec_mapping

    mapping = read_spec_mapping(spec_path)
    codoping = mapping.get("codoping")
    asked = [mapping.get("dopants"), codoping.get("dopants") if isinstance(codoping, dict) else None]
    text = " ".join(str(a) for a in asked if a is not None).lower().replace(" ", "_")
    if MODEL_ELEMENTS_GROUP not in text and "every_element_the_model_knows" not in text:
        return None
    family = FAMILIES.get(str(mapping.get("family")))
    if family is None:
        raise SpecError(f"{spec_path}: family: unknown family {mapping.get('family')!r}")
    known: frozenset[str] | None = None
    for target in family.targets:
        model, _ = load_champion(target, tracking_uri)
        elements = frozenset(model.training_elements_)
        known = elements if known is None else known & elements
    return known


def _counts_rich_table(counts: dict[str, int]) -> Any:
    from rich.table import Table

    table = Table(title="counts", show_header=False)
    table.add_column("what")
    table.add_column("n", justify="right")
    labels = {
        "generated": "generated",
        "rejected_neutrality": "rejected: not charge-neutral",
        "rejected_other": "rejected: other reasons",
        "scored": "scored",
        "out_of_domain": "scored but out of domain",
        "failed_predictions": "failed predictions",
        "eligible": "ranked (passed filters)",
        "failed_chunks": "failed chunks",
        "failed_chunk_candidates": "candidates in failed chunks",
    }
    for key, label in labels.items():
        table.add_row(label, f"{counts[key]:,}")
    return table


def _champions(
    targets: list[Any], tracking_uri: str, train_if_missing: bool, data_dir: Path, console: Any
) -> dict[str, str]:
    """The champion version per target; trains the missing ones with --train-if-missing, else exits."""
    from models.tracking import champion_version

    versions = {t.value: champion_version(t, tracking_uri) for t in targets}
    missing = [t for t in targets if versions[t.value] is None]
    if missing and not train_if_missing:
        names = ", ".join(t.value for t in missing)
        console.print(
            f"[red]no champion model registered for {names} in {tracking_uri}.[/red]\n"
            f"Train it first (`nascreen train --target {missing[0].value}`) or rerun with --train-if-missing."
        )
        raise typer.Exit(code=2)
    if missing:
        from service.cli.models import train_and_register

        console.print(f"training the missing champion(s): {', '.join(t.value for t in missing)}")
        train_and_register(missing, tracking_uri=tracking_uri, data_dir=data_dir, console=console)
        versions = {t.value: champion_version(t, tracking_uri) for t in targets}
    return {k: str(v) for k, v in versions.items()}


def screen(
    spec_path: Annotated[
        Path, typer.Argument(metavar="SPEC", exists=True, dir_okay=False, help="Screening spec (YAML/TOML).")
    ],
    executor: Annotated[
        str, typer.Option(help="'ray' (embedded local Ray, or --address) or 'local' (one process).")
    ] = "ray",
    address: Annotated[
        str | None,
        typer.Option(
            envvar="RAY_ADDRESS", help="Existing Ray cluster (default: start an embedded local Ray)."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(file_okay=False, help="Output directory (default screens/<spec name>/).")
    ] = None,
    top: Annotated[int, typer.Option(min=1, help="Candidates in the terminal summary and top-k table.")] = 15,
    chunk_size: Annotated[
        int | None, typer.Option(min=1, help="Candidates per chunk, the unit of work and of resume [25000].")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume/--no-resume", help="Reuse finished chunks of an identical screen.")
    ] = True,
    num_cpus: Annotated[
        int | None, typer.Option(min=1, help="CPUs of the embedded local Ray (default: all).")
    ] = None,
    tracking_uri: TrackingOption = None,
    train_if_missing: Annotated[
        bool, typer.Option("--train-if-missing", help="Train and register missing champion models first.")
    ] = False,
    data_dir: DataDirOption = DEFAULT_DATA_DIR,
    log_to_mlflow: Annotated[
        bool, typer.Option("--mlflow/--no-mlflow", help="Log the screen to MLflow.")
    ] = True,
) -> None:
    """Screen dopant candidates of a spec: rank them with uncertainty and write tables + plots."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from models.targets import TARGETS
    from models.tracking import NoChampionError
    from screening.ranking import describe
    from screening.report import count_outcomes, heatmap_figure, pareto_figure, top_table
    from screening.runner import DEFAULT_CHUNK_SIZE, LocalExecutor, SpecScorerFactory, run_screen
    from screening.runner import Progress as ScreenProgress
    from screening.spec import SpecError
    from screening.spec_io import load_spec
    from screening.store import ManifestMismatchError, write_table

    console = Console()
    if executor not in EXECUTORS:
        raise typer.BadParameter(
            f"{executor!r}: expected one of {', '.join(EXECUTORS)}", param_hint="--executor"
        )
    uri = resolve_tracking_uri(tracking_uri)
    try:
        spec = load_spec(spec_path, model_elements=_model_elements_if_asked(spec_path, uri))
    except (SpecError, OSError, NoChampionError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(code=2) from None
    targets = list(spec.targets)
    target_names = [t.value for t in targets]
    units = {t.value: TARGETS[t].unit for t in targets}
    versions = _champions(targets, uri, train_if_missing, data_dir, console)
    out_dir = (out or PROJECT_ROOT / "screens" / spec.name).resolve()
    size = chunk_size or DEFAULT_CHUNK_SIZE
    console.print(
        f"screen [bold]{spec.name}[/bold] ({spec.family.name}): targets {', '.join(target_names)}; models "
        + ", ".join(f"{k} v{v}" for k, v in versions.items())
        + f"; ranked by {describe(spec.ranking)}; executor {executor}"
        + (f" at {address}" if executor == "ray" and address else "")
    )

    factory = SpecScorerFactory(spec=spec, tracking_uri=uri, model_versions=versions)
    columns = [TextColumn("screening"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[note]}")]
    with Progress(*columns, TimeRemainingColumn(), console=console, transient=False) as bar:
        task = bar.add_task("screen", total=None, note="")

        def on_progress(p: ScreenProgress) -> None:
            note = f"chunks {p.chunks_done}/{p.chunks_total}" + (
                f", {p.chunks_failed} failed" if p.chunks_failed else ""
            )
            bar.update(task, total=p.candidates_total, completed=p.candidates_done, note=note)

        def run(chunk_executor: Any) -> Any:
            return run_screen(
                spec,
                out_dir,
                factory=factory,
                model_versions=versions,
                executor=chunk_executor,
                chunk_size=size,
                resume=resume,
                progress=on_progress,
            )

        try:
            if executor == "local":
                result = run(LocalExecutor())
            else:
                from screening.ray_runner import RayExecutor, ray_session

                with ray_session(address=address, num_cpus=num_cpus):
                    result = run(RayExecutor())
        except ManifestMismatchError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(code=2) from None

    ranked, execution = result.ranked, result.execution
    counts = count_outcomes(
        ranked,
        target_names,
        result.rejected_codes,
        failed_chunks=len(execution.failed),
        failed_chunk_candidates=execution.n_failed_candidates,
    )
    ranked_by = describe(spec.ranking)
    top_k = top_table(ranked, target_names, top)
    paths = dict(result.paths)
    paths["top_csv"] = out_dir / "top.csv"
    write_table(top_k, out_dir / "top.parquet", paths["top_csv"])
    plots = out_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    objectives = [o.target for o in spec.ranking.objectives]
    figures = {
        "best_score_heatmap.png": heatmap_figure(ranked, spec.name, f"{spec.ranking.mode} mode"),
        "pareto_front.png": pareto_figure(
            ranked, objectives, units, f"{spec.name} ({spec.ranking.mode} mode)"
        ),
    }
    for name, fig in figures.items():
        fig.savefig(plots / name, dpi=130)
        paths[name.removesuffix(".png")] = plots / name
    summary = {
        "spec": spec.name,
        "family": spec.family.name,
        "ranked_by": ranked_by,
        "model_versions": versions,
        "counts": counts.as_dict(),
        "failed_chunks": [
            {"chunk": f.chunk.index, "start": f.chunk.start, "stop": f.chunk.stop, "error": f.error}
            for f in execution.failed
        ],
        "chunks": {
            "total": execution.n_chunks,
            "reused": len(execution.reused),
            "computed": len(execution.computed),
        },
        "seconds": round(execution.seconds, 2),
        "executor": executor,
    }
    paths["summary"] = out_dir / "summary.json"
    paths["summary"].write_text(json.dumps(summary, indent=2))
    (out_dir / "spec.json").write_text(json.dumps(spec.to_dict(), indent=2, sort_keys=True))

    console.print(
        _top_rich_table(
            top_k, target_names, units, f"top {len(top_k)} of {spec.name}: mean +- std (intervals in top.csv)"
        )
    )
    console.print(_counts_rich_table(counts.as_dict()))
    for failed in execution.failed:
        console.print(
            f"[red]chunk {failed.chunk.index} [{failed.chunk.start}, {failed.chunk.stop}) failed "
            f"after {failed.attempts} attempts: {failed.error}[/red] (rerun to retry it)"
        )
    console.print(f"tables and plots in {out_dir}")

    if log_to_mlflow:
        from models.tracking import log_run

        run_id = log_run(
            SCREENING_EXPERIMENT,
            params={
                "spec_name": spec.name,
                "family": spec.family.name,
                "ranked_by": ranked_by,
                "executor": executor,
                "chunk_size": size,
                "n_candidates": result.manifest.n_candidates,
                **{f"model_version.{k}": v for k, v in versions.items()},
            },
            metrics={
                **{f"n_{k}": float(v) for k, v in counts.as_dict().items()},
                "seconds": execution.seconds,
            },
            artifacts={
                "spec": out_dir / "spec.json",
                "summary": paths["summary"],
                "tables": paths["top_csv"],
                "plots": plots,
            },
            tags={"nascreen.spec": spec.name, "nascreen.spec_hash": result.manifest.spec_hash},
            tracking_uri=uri,
        )
        console.print(f"logged to MLflow experiment {SCREENING_EXPERIMENT}, run {run_id}")
    if execution.failed:
        raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    app.command("screen")(screen)
