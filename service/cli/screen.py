"""`nascreen screen SPEC`: generate, score and rank a candidate space on local Ray (default), an existing
Ray cluster (--address / RAY_ADDRESS) or in one process (--executor local); write the ranked and rejected
tables, plots and a summary under --out, log the screen to MLflow and print the top candidates.

Environment variables are read here (the edge) and passed down: RAY_ADDRESS, MLFLOW_TRACKING_URI.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from service.cli.models import (
    DEFAULT_DATA_DIR,
    PROJECT_ROOT,
    DataDirOption,
    TrackingOption,
    resolve_tracking_uri,
)

SCREENING_EXPERIMENT = "nascreen-screening"
EXECUTORS = ("auto", "ray", "local")


def _fmt(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.3g}"
    return "-" if value is None else str(value)


def _top_rich_table(
    top: Any, targets: list[str], units: dict[str, str], title: str, relative_to: str = "host"
) -> Any:
    """Compact enough for an 80-column terminal: mean +- std per target (intervals are in top.csv). With
    deltas vs the reference: the means, per such target the change with the half-width of its 90% interval
    and P(better), and no dopant / x / domain / score columns (the formula says the dopant; stds, domain
    flags and scores are in top.csv)."""
    from rich.table import Table

    from screening.schema import Field, column

    table = Table(title=title, title_justify="left")
    relative = [t for t in targets if column(t, Field.DELTA) in top]
    for col in ("#", "formula") if relative else ("#", "formula", "dopant", "x"):
        table.add_column(col, justify="right" if col in ("#", "x") else "left", no_wrap=col == "formula")
    short = {"average_voltage": "V", "capacity_retention": "retention", "ionic_conductivity": "log10 sigma"}
    if relative:
        short["capacity_retention"] = "ret."
    for t in targets:
        table.add_column(f"{short.get(t, t)} ({units[t]})", justify="right", no_wrap=True)
        if t in relative:
            table.add_column(f"Δ vs {relative_to}", justify="right", no_wrap=True)
            table.add_column("P>" + relative_to, justify="right", no_wrap=True)
        elif not relative:
            table.add_column("dom", justify="center")
    if not relative:
        table.add_column("score", justify="right")
    for _, row in top.iterrows():
        cells = [_fmt(row["rank"]), str(row["formula"])]
        if not relative:
            cells += [str(row["dopant"]), _fmt(float(row["fraction"]))]
        for t in targets:
            mean, std = row[column(t, Field.PREDICTION)], row[column(t, Field.STD)]
            cells.append(f"{mean:.3g}" if relative else f"{mean:.3g} +- {std:.2g}")
            if t in relative:
                cells.append(_delta_cell(row, t))
                cells.append(f"{float(row[column(t, Field.P_BETTER)]):.2f}")
            elif not relative:
                cells.append(_fmt(bool(row[column(t, Field.IN_DOMAIN)])))
        if not relative:
            cells.append(_fmt(float(row["score"])))
        table.add_row(*cells)
    return table


def relative_notes(spec: Any, ranked: Any) -> list[str]:
    """Per target with deltas: what they are measured from, the host's 0 line, and the spread of the delta
    interval widths over the scored candidates (per-candidate uncertainty: they should differ)."""
    import numpy as np

    from screening.schema import Field, column

    lines = []
    for t in (t.value for t in spec.targets):
        delta = column(t, Field.DELTA)
        if delta not in ranked or not np.isfinite(ranked[delta].to_numpy(float)).any():
            continue
        width = (ranked[column(t, Field.DELTA_UPPER_90)] - ranked[column(t, Field.DELTA_LOWER_90)]).to_numpy(
            float
        )
        width = width[np.isfinite(width)]
        host = ranked[ranked["is_host"].astype(bool)] if "is_host" in ranked else ranked.iloc[0:0]
        host_value = float(host[column(t, Field.PREDICTION)].iloc[0]) if len(host) else float("nan")
        anchored = column(t, Field.ANCHORED_PREDICTION)
        n_anchors = sum(a.target.value == t for a in spec.anchors)
        lines.append(
            f"{t}: change vs {spec.reference} (predicted {host_value:.3g}: the 0 line) under the spec's "
            f"conditions, P(better) = P(change > 0); 90% interval widths over {width.size} candidates: "
            f"min {width.min():.3g}, median {np.median(width):.3g}, max {width.max():.3g}"
            + (
                f"; anchored to {n_anchors} measured row(s) ({anchored} in top.csv)"
                if n_anchors and anchored in ranked
                else ""
            )
        )
    return lines


def _delta_cell(row: Any, target: str) -> str:
    """``+3.1±12``: the predicted change vs the reference and the half-width of its 90% interval (the
    interval is symmetric; both ends are in top.csv)."""
    from screening.schema import Field, column

    d = float(row[column(target, Field.DELTA)])
    if math.isnan(d):
        return "-"
    upper = float(row[column(target, Field.DELTA_UPPER_90)])
    lower = float(row[column(target, Field.DELTA_LOWER_90)])
    return f"{d:+.2g}±{(upper - lower) / 2:.2g}"


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


@dataclass(frozen=True)
class _Prepared:
    """Everything decided before the first chunk runs (spec read and parsed once, models pinned)."""

    spec: Any  # screening.spec.ScreeningSpec
    uri: str
    versions: dict[str, str]
    out_dir: Path
    units: dict[str, str]


def _fail(console: Any, message: object) -> NoReturn:
    console.print(f"[red]{message}[/red]", highlight=False)
    raise typer.Exit(code=2)


def check_out_dir(out_dir: Path) -> str | None:
    """Why ``out_dir`` cannot take the screen's files (None if it can), found by creating it and writing a
    probe file there (permission bits alone lie for root and on read-only mounts). Runs before any model
    loads, so a bad --out costs nothing."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".nascreen-probe-"):
            pass
    except OSError as exc:
        return f"--out {out_dir}: cannot write the screen there ({exc.strerror or exc})"
    return None


def _elements_of(uri: str) -> Any:
    from models.tracking import load_champion

    def elements_of(target: Any) -> frozenset[str]:
        model, _ = load_champion(target, uri)
        return frozenset(model.training_elements_)

    return elements_of


def _prepare(
    spec_path: Path,
    out: Path | None,
    tracking_uri: str | None,
    train_if_missing: bool,
    data_dir: Path,
    console: Any,
) -> _Prepared:
    """Read the spec once, check its shape and the output directory (before any model loads), parse it,
    make sure the champions exist."""
    from models.targets import TARGETS
    from models.tracking import NoChampionError
    from screening.session import open_spec
    from screening.spec import SpecError
    from screening.spec_forms import SpecForm
    from screening.spec_io import read_spec_mapping

    def named(exc: Exception) -> str:
        return str(exc) if str(exc).startswith(str(spec_path)) else f"{spec_path}: {exc}"

    uri = resolve_tracking_uri(tracking_uri)
    try:
        mapping = read_spec_mapping(spec_path)
        name = SpecForm.from_mapping(mapping).name  # the shape only: cheap, loads nothing
    except SpecError as exc:
        _fail(console, named(exc))
    out_dir = (out or PROJECT_ROOT / "screens" / name).resolve()
    problem = check_out_dir(out_dir)
    if problem:
        _fail(console, problem)
    try:
        spec = open_spec(mapping, elements_of=_elements_of(uri))
    except SpecError as exc:
        _fail(console, named(exc))
    except (OSError, NoChampionError) as exc:
        _fail(console, exc)
    versions = _champions(list(spec.targets), uri, train_if_missing, data_dir, console)
    if spec.anchors:  # every measured row is checked once here, not by every chunk
        from models.predictor import load_predictors
        from screening.session import check_anchors

        try:
            check_anchors(spec, load_predictors(sorted({a.target for a in spec.anchors}), uri))
        except SpecError as exc:
            _fail(console, named(exc))
    units = {t.value: TARGETS[t].unit for t in spec.targets}
    return _Prepared(spec=spec, uri=uri, versions=versions, out_dir=out_dir, units=units)


def _resolve_executor(executor: str, spec: Any, num_cpus: int | None, address: str | None) -> tuple[str, str]:
    """``--executor auto``: ``ray`` or ``local`` and why (``screening.runner.choose_executor``)."""
    if executor != "auto":
        return executor, ""
    import os

    from screening.candidates import count_candidates
    from screening.runner import choose_executor

    return choose_executor(count_candidates(spec), num_cpus or os.cpu_count() or 1, address)


def _run(
    prep: _Prepared,
    executor: str,
    address: str | None,
    num_cpus: int | None,
    size: int,
    resume: bool,
    console: Any,
) -> Any:
    """The chunk loop with a progress bar; returns screening.runner.ScreenResult."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from screening.runner import Progress as ScreenProgress
    from screening.runner import SpecScorerFactory
    from screening.session import run_session
    from screening.store import ManifestMismatchError

    factory = SpecScorerFactory(spec=prep.spec, tracking_uri=prep.uri, model_versions=prep.versions)
    columns = [TextColumn("screening"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[note]}")]
    with Progress(*columns, TimeRemainingColumn(), console=console, transient=False) as bar:
        task = bar.add_task("screen", total=None, note="")

        def on_progress(p: ScreenProgress) -> None:
            note = f"chunks {p.chunks_done}/{p.chunks_total}" + (
                f", {p.chunks_failed} failed" if p.chunks_failed else ""
            )
            bar.update(task, total=p.candidates_total, completed=p.candidates_done, note=note)

        try:
            return run_session(
                prep.spec,
                prep.out_dir,
                factory=factory,
                model_versions=prep.versions,
                executor="local" if executor == "local" else "ray",
                address=address,
                num_cpus=num_cpus,
                chunk_size=size,
                resume=resume,
                progress=on_progress,
            )
        except ManifestMismatchError as exc:
            _fail(console, exc)


def _report(prep: _Prepared, result: Any, summary: Any, executor: str) -> dict[str, Path]:
    """Write top.parquet/csv, the plots, summary.json and spec.json next to the ranked table."""
    from screening.ranking import describe
    from screening.report import heatmap_figure, pareto_figure
    from screening.store import write_table

    spec, out_dir, execution = prep.spec, prep.out_dir, result.execution
    paths = dict(result.paths)
    paths["top_csv"] = out_dir / "top.csv"
    write_table(summary.top, out_dir / "top.parquet", paths["top_csv"])
    plots = out_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    objectives = [o.target for o in spec.ranking.objectives]
    figures = {
        "best_score_heatmap.png": heatmap_figure(result.ranked, spec.name, f"{spec.ranking.mode} mode"),
        "pareto_front.png": pareto_figure(
            result.ranked, objectives, prep.units, f"{spec.name} ({spec.ranking.mode} mode)"
        ),
    }
    for name, fig in figures.items():
        fig.savefig(plots / name, dpi=130)
        paths[name.removesuffix(".png")] = plots / name
    paths["plots"] = plots
    doc = {
        "spec": spec.name,
        "family": spec.family.name,
        "phase": spec.phase,
        "ranked_by": describe(spec.ranking),
        "model_versions": prep.versions,
        "counts": summary.counts.as_dict(),
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
    paths["summary"].write_text(json.dumps(doc, indent=2))
    paths["spec"] = out_dir / "spec.json"
    paths["spec"].write_text(json.dumps(spec.to_dict(), indent=2, sort_keys=True))
    return paths


def _log(prep: _Prepared, result: Any, summary: Any, paths: dict[str, Path], executor: str, size: int) -> str:
    """Log the screen to MLflow; returns the run id."""
    from models.tracking import log_run
    from screening.ranking import describe

    spec = prep.spec
    return log_run(
        SCREENING_EXPERIMENT,
        params={
            "spec_name": spec.name,
            "family": spec.family.name,
            "ranked_by": describe(spec.ranking),
            "executor": executor,
            "chunk_size": size,
            "n_candidates": result.manifest.n_candidates,
            **{f"model_version.{k}": v for k, v in prep.versions.items()},
        },
        metrics={
            **{f"n_{k}": float(v) for k, v in summary.counts.as_dict().items()},
            "seconds": result.execution.seconds,
        },
        artifacts={
            "spec": paths["spec"],
            "summary": paths["summary"],
            "tables": paths["top_csv"],
            "plots": paths["plots"],
        },
        tags={"nascreen.spec": spec.name, "nascreen.spec_hash": result.manifest.spec_hash},
        tracking_uri=prep.uri,
    )


def _print(prep: _Prepared, result: Any, summary: Any, console: Any) -> None:
    targets = [t.value for t in prep.spec.targets]
    title = f"top {len(summary.top)} of {prep.spec.name}: mean +- std (intervals in top.csv)"
    if any(c.endswith("_delta") for c in summary.top.columns):
        title = (
            f"top {len(summary.top)} of {prep.spec.name}: means, change vs the host with its 90% half-width, "
            "P(better than the host); all columns in top.csv"
        )
    spec = prep.spec
    relative_to = "host" if spec.reference == spec.host else "ref"
    console.print(_top_rich_table(summary.top, targets, prep.units, title, relative_to))
    for line in relative_notes(spec, result.ranked):
        console.print(line, markup=False, highlight=False)
    console.print(_counts_rich_table(summary.counts.as_dict()))
    for failed in result.execution.failed:
        console.print(
            f"[red]chunk {failed.chunk.index} [{failed.chunk.start}, {failed.chunk.stop}) failed "
            f"after {failed.attempts} attempts: {failed.error}[/red] (rerun to retry it)"
        )
    console.print(f"tables and plots in {prep.out_dir}")


def screen(
    spec_path: Annotated[
        Path, typer.Argument(metavar="SPEC", exists=True, dir_okay=False, help="Screening spec (YAML/TOML).")
    ],
    executor: Annotated[
        str,
        typer.Option(
            help="'ray' (embedded local Ray, or --address), 'local' (one process) or 'auto' (Ray for an "
            "existing cluster or >= 400,000 candidates on >= 2 CPUs, else local)."
        ),
    ] = "auto",
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
    from rich.markup import escape

    from screening.ranking import describe
    from screening.runner import DEFAULT_CHUNK_SIZE
    from screening.session import summarise

    console = Console()
    if executor not in EXECUTORS:
        raise typer.BadParameter(
            f"{executor!r}: expected one of {', '.join(EXECUTORS)}", param_hint="--executor"
        )
    prep = _prepare(spec_path, out, tracking_uri, train_if_missing, data_dir, console)
    spec, size = prep.spec, chunk_size or DEFAULT_CHUNK_SIZE
    executor, chosen = _resolve_executor(executor, spec, num_cpus, address)
    console.print(
        f"screen [bold]{escape(spec.name)}[/bold] ({spec.family.name}): targets "
        + ", ".join(t.value for t in spec.targets)
        + "; models "
        + ", ".join(f"{k} v{v}" for k, v in prep.versions.items())
        # escaped: the objectives are written "target [by delta, max, weight 1]", which rich took as markup
        + f"; phase {spec.phase}; ranked by {escape(describe(spec.ranking))}; executor {executor}"
        + (f" at {address}" if executor == "ray" and address else "")
        + (f" ({chosen})" if chosen else "")
    )
    result = _run(prep, executor, address, num_cpus, size, resume, console)
    summary = summarise(spec, result, top)
    paths = _report(prep, result, summary, executor)
    _print(prep, result, summary, console)
    if log_to_mlflow:
        run_id = _log(prep, result, summary, paths, executor, size)
        console.print(f"logged to MLflow experiment {SCREENING_EXPERIMENT}, run {run_id}")
    if result.execution.failed:
        raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    """Add ``nascreen screen`` to the CLI."""
    app.command("screen")(screen)
