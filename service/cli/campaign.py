"""`nascreen campaign new|propose|add-results|status|history|list`: closed-loop campaigns from the terminal.

A campaign is a screening spec (the candidate space), objectives and an acquisition rule, kept in the
campaign store (``mlruns/campaigns.db`` beside the MLflow store and the API's job store, so the CLI and
``nascreen serve`` see the same campaigns). Every command calls ``service.campaigns.service``, the one
campaign service the HTTP API calls too.

Environment variables are read here (the edge): NASCREEN_CAMPAIGNS_DB, MLFLOW_TRACKING_URI.
"""

from __future__ import annotations

import math
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

campaign_app = typer.Typer(
    name="campaign",
    help="Closed-loop campaigns: propose a batch, add the lab's measurements, propose the next batch.",
    no_args_is_help=True,
)

DEFAULT_STORE = PROJECT_ROOT / "mlruns" / "campaigns.db"
StoreOption = Annotated[
    Path,
    typer.Option(
        "--store",
        envvar="NASCREEN_CAMPAIGNS_DB",
        dir_okay=False,
        help="Campaign store (SQLite; default <project root>/mlruns/campaigns.db, beside the job store).",
    ),
]
NameArg = Annotated[str, typer.Argument(metavar="NAME", help="Campaign name (or id).")]


def _fail(console: Any, message: object) -> NoReturn:
    from rich.markup import escape

    console.print(f"[red]error: {escape(str(message))}[/red]", highlight=False)
    raise typer.Exit(code=2)


def _service(store: Path, tracking_uri: str | None, data_dir: Path = DEFAULT_DATA_DIR) -> Any:
    from service.campaigns.service import CampaignService, ModelSource
    from service.campaigns.store import CampaignStore

    uri = resolve_tracking_uri(tracking_uri)
    models = ModelSource(uri)

    def elements_of(target: Any) -> frozenset[str]:
        from models.predictor import training_elements

        return training_elements(models.champion(target))

    return CampaignService(
        CampaignStore(store),
        models,
        store.parent / "campaigns",
        data_dir=data_dir,
        elements_of=elements_of,
    )


def _guard(console: Any, fn: Any) -> Any:
    """Run ``fn()``; the errors a user can cause become one red line and exit code 2."""
    from models.tracking import NoChampionError
    from service.campaigns.results import ResultsError
    from service.campaigns.service import CampaignError
    from service.campaigns.store import (
        CampaignExistsError,
        RoundInProgressError,
        StoreVersionError,
        UnknownCampaignError,
    )
    from service.cli.tables import TableError

    try:
        return fn()
    except UnknownCampaignError as exc:
        _fail(console, f"no campaign {exc.args[0]!r} (see `nascreen campaign list`)")
    except NoChampionError as exc:
        _fail(console, f"{exc} (or `nascreen train --target <target>`)")
    except (
        CampaignError,
        CampaignExistsError,
        ResultsError,
        RoundInProgressError,
        StoreVersionError,
        TableError,
    ) as exc:
        _fail(console, exc)


def _parse_objective(text: str) -> dict[str, Any]:
    """``TARGET[:max|min][:WEIGHT]`` -> an objective mapping."""
    parts = [p.strip() for p in text.split(":")]
    if not 1 <= len(parts) <= 3 or not parts[0]:
        raise typer.BadParameter(f"{text!r}: use TARGET[:max|min][:WEIGHT]", param_hint="--objective")
    out: dict[str, Any] = {"target": parts[0]}
    for part in parts[1:]:
        if part in ("max", "min"):
            out["direction"] = part
            continue
        try:
            weight = float(part)
        except ValueError:
            raise typer.BadParameter(f"{text!r}: {part!r} is neither max/min nor a weight") from None
        if not math.isfinite(weight) or weight <= 0:
            raise typer.BadParameter(
                f"{text!r}: the weight must be a positive number", param_hint="--objective"
            )
        out["weight"] = weight
    return out


def new(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="Campaign name: lower-case letters, digits, - _")
    ],
    spec_path: Annotated[
        Path, typer.Option("--spec", exists=True, dir_okay=False, help="Screening spec: the candidate space.")
    ],
    objective: Annotated[
        list[str] | None,
        typer.Option(
            "--objective",
            help="TARGET[:max|min][:WEIGHT], repeatable (default: the spec's ranking objectives).",
        ),
    ] = None,
    acquisition: Annotated[
        str | None,
        typer.Option(help="ei (default: over the best measured), ucb, p_better (P(beating it)) or greedy."),
    ] = None,
    kappa: Annotated[float | None, typer.Option(help="UCB exploration weight (mean + kappa * std).")] = None,
    diversity: Annotated[
        str | None,
        typer.Option(help="Batch diversity: kriging_believer (default), local_penalisation or none."),
    ] = None,
    explore: Annotated[
        bool,
        typer.Option("--explore/--in-domain-only", help="Allow candidates outside the models' domain."),
    ] = False,
    seed: Annotated[int, typer.Option(min=0, help="Campaign seed; round n uses a seed derived from it.")] = 0,
    reference: Annotated[
        str | None, typer.Option(help="Reference formula (default: the spec's host).")
    ] = None,
    store: StoreOption = DEFAULT_STORE,
    tracking_uri: TrackingOption = None,
) -> None:
    """Create a campaign over the candidates of a screening spec."""
    from rich.console import Console

    from screening.spec import SpecError
    from screening.spec_io import read_spec_mapping

    console = Console()
    try:
        mapping = read_spec_mapping(spec_path)
    except SpecError as exc:
        _fail(console, exc)
    text = spec_path.read_text(encoding="utf-8")
    acq: dict[str, Any] = {"explore": explore}
    if acquisition is not None:
        acq["kind"] = acquisition
    if kappa is not None:
        acq["kappa"] = kappa
    if diversity is not None:
        acq["diversity"] = diversity
    objectives = [_parse_objective(o) for o in objective or []]
    service = _service(store, tracking_uri)
    record = _guard(
        console,
        lambda: service.new(
            name=name,
            spec=mapping,
            spec_text=text,
            objectives=objectives or None,
            acquisition=acq,
            seed=seed,
            reference=reference,
        ),
    )
    console.print(f"campaign [bold]{record.name}[/bold] ({record.id}) created in {store}")
    _print_campaign(console, record)
    console.print(f"next: nascreen campaign propose {record.name} -k 6")


def _print_campaign(console: Any, record: Any) -> None:
    objectives = ", ".join(
        f"{o['target']} ({o.get('direction', 'max')}, weight {o.get('weight', 1):g})"
        for o in record.objectives
    )
    console.print(
        f"spec {record.spec.get('name')} (sha256 {record.spec_sha256[:12]}); objectives: {objectives}; "
        f"acquisition {record.acquisition}; seed {record.seed}; reference {record.reference}",
        highlight=False,
    )


def _fmt(value: object, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.{digits}g}"
    return str(value)


def propose(
    name: NameArg,
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=50, help="Candidates to propose.")] = 6,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", dir_okay=False, help="Also write the proposals (CSV).")
    ] = None,
    store: StoreOption = DEFAULT_STORE,
    tracking_uri: TrackingOption = None,
) -> None:
    """Propose the next batch of k candidates (scored on the campaign's models, anchored to your lab)."""
    from rich.console import Console

    console = Console()
    service = _service(store, tracking_uri)
    rnd = _guard(console, lambda: service.propose(name, k))
    record = service.get(name)
    console.print(_proposals_table(rnd, [o["target"] for o in record.objectives]))
    versions = ", ".join(f"{t} v{v}" for t, v in rnd.model_versions.items())
    console.print(
        f"round {rnd.number} of {record.name}: seed {rnd.seed}, models {versions}, "
        f"spec {rnd.spec_hash[:12]}, from {rnd.n_measured} measured rows",
        highlight=False,
    )
    if output is not None:
        import pandas as pd

        pd.DataFrame(rnd.proposals).to_csv(output, index=False)
        console.print(f"proposals -> {output}")
    console.print(f"measure them, then: nascreen campaign add-results {record.name} RESULTS.csv")


def _proposals_table(rnd: Any, targets: list[str]) -> Any:
    from rich.table import Table

    table = Table(title=f"round {rnd.number}: {len(rnd.proposals)} proposals", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("formula", no_wrap=True)
    for t in targets:
        table.add_column(f"{t} mean +- std", justify="right", no_wrap=True)
    table.add_column("acq.", justify="right")
    table.add_column("why")
    for i, p in enumerate(rnd.proposals, start=1):
        cells = [str(i), str(p.get("formula", ""))]
        for t in targets:
            mean, std = p.get(f"{t}_prediction"), p.get(f"{t}_std")
            cells.append("-" if mean is None else f"{_fmt(mean)} +- {_fmt(std, 2)}")
        cells.append(_fmt(p.get("acquisition")))
        cells.append(str(p.get("reason", "")))
        table.add_row(*cells)
    return table


def add_results(
    name: NameArg,
    results: Annotated[
        Path,
        typer.Argument(
            metavar="RESULTS", exists=True, dir_okay=False, help="CSV/Parquet: formula, value per target, ..."
        ),
    ],
    store: StoreOption = DEFAULT_STORE,
    tracking_uri: TrackingOption = None,
    data_dir: DataDirOption = DEFAULT_DATA_DIR,
) -> None:
    """Add measured rows (formula, one column per target, conditions); a bad row is reported with its
    reason and the others are taken; the campaign's models are refitted when there are enough rows."""
    from rich.console import Console

    from service.cli.predict import read_anchors

    console = Console()
    frame = _guard(console, lambda: read_anchors(results))
    service = _service(store, tracking_uri, data_dir)
    outcome = _guard(console, lambda: service.add_results(name, frame))
    console.print(_results_table(outcome))
    for note in outcome.notes:
        console.print(f"note: {note}", highlight=False)
    console.print(
        f"batch {outcome.batch}: {outcome.n_accepted} rows taken, {outcome.n_rejected} refused",
        highlight=False,
    )
    for refit in outcome.refits:
        console.print(
            f"refit {refit.target}: version {refit.version} (alias campaign-{outcome.campaign.name}, "
            f"MLflow run {refit.run_id}) on {refit.n_rows} campaign rows",
            highlight=False,
        )
    for target, why in outcome.refit_skipped.items():
        console.print(f"no refit of {target}: {why}", highlight=False)


def _results_table(outcome: Any) -> Any:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"results batch {outcome.batch}", title_justify="left")
    for col in ("row", "formula", "values", "round", "outcome"):
        table.add_column(col)
    for r in outcome.rows:
        values = ", ".join(f"{k}={v:g}" for k, v in r.values.items())
        table.add_row(
            str(r.row),
            escape(r.formula),
            values or "-",
            "-" if r.round is None else str(r.round),
            "taken" if r.accepted else f"[red]refused: {escape(r.error)}[/red]",
        )
    return table


def _status(service: Any, name: str) -> Any:
    from service.campaigns.report import campaign_status

    record = service.get(name)
    st = service.store
    return campaign_status(record, st.rounds(record.id), st.results(record.id), st.refits(record.id))


def _write_plot(status: Any, path: Path) -> Path:
    from service.campaigns.report import best_so_far_figure

    path.parent.mkdir(parents=True, exist_ok=True)
    fig = best_so_far_figure(status)
    fig.savefig(path, dpi=130)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def status(
    name: NameArg,
    plot: Annotated[
        Path | None,
        typer.Option(dir_okay=False, help="Best-so-far plot (PNG; default beside the store)."),
    ] = None,
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Rounds, best measured so far, predicted vs measured per round, and the best-so-far plot."""
    from rich.console import Console

    console = Console()
    service = _service(store, None)
    st = _guard(console, lambda: _status(service, name))
    _print_campaign(console, st.campaign)
    console.print(_rounds_table(st))
    for target, best in st.best.items():
        console.print(
            f"best {target} so far ({best['direction']}): {best['value']:g} ({best['formula']}, experiment "
            f"{best['experiment']}" + (f", proposed in round {best['round']})" if best["round"] else ")"),
            highlight=False,
        )
    if not st.best:
        console.print("no measured results yet")
    console.print(_calibration_table(st))
    for refit in st.refits:
        console.print(
            f"campaign model {refit.target} v{refit.version} (run {refit.run_id}, {refit.n_rows} rows)",
            highlight=False,
        )
    path = _write_plot(st, plot or service.work_dir / st.campaign.id / "best_so_far.png")
    console.print(f"plot -> {path}")


def _rounds_table(st: Any) -> Any:
    from rich.table import Table

    table = Table(title="rounds", title_justify="left")
    for col in ("round", "k", "seed", "models", "spec", "measured before", "of its proposals measured"):
        table.add_column(col)
    measured_by_round: dict[int, int] = {}
    for r in st.results:
        if r.accepted and r.round is not None:
            measured_by_round[r.round] = measured_by_round.get(r.round, 0) + 1
    for rnd in st.rounds:
        table.add_row(
            str(rnd.number),
            str(rnd.k),
            str(rnd.seed),
            ", ".join(f"{t} v{v}" for t, v in rnd.model_versions.items()),
            rnd.spec_hash[:12],
            str(rnd.n_measured),
            str(measured_by_round.get(rnd.number, 0)),
        )
    return table


def _calibration_table(st: Any) -> Any:
    from rich.table import Table

    table = Table(title="predicted (before measuring) vs measured", title_justify="left")
    for col in ("round", "target", "n", "inside 90% interval", "MAE"):
        table.add_column(col)
    for _, row in st.calibration.iterrows():
        table.add_row(
            str(row["round"]), row["target"], str(row["n"]), f"{row['inside_90']:.0%}", f"{row['mae']:.3g}"
        )
    return table


def history(
    name: NameArg,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", dir_okay=False, help="Write every measured row with its prediction (CSV)."
        ),
    ] = None,
    plot: Annotated[Path | None, typer.Option(dir_okay=False, help="Best-so-far plot (PNG).")] = None,
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Every round's proposals and every measured row (with what was predicted before), in order."""
    from rich.console import Console

    console = Console()
    service = _service(store, None)
    st = _guard(console, lambda: _status(service, name))
    targets = [o["target"] for o in st.campaign.objectives]
    for rnd in st.rounds:
        console.print(_proposals_table(rnd, targets))
    console.print(_experiments_table(st, targets))
    refused = [r for r in st.results if not r.accepted]
    for r in refused:
        console.print(f"batch {r.batch} row {r.row} ({r.formula!r}) refused: {r.error}", highlight=False)
    if output is not None:
        st.experiments.to_csv(output, index=False)
        console.print(f"history -> {output}")
    if plot is not None:
        console.print(f"plot -> {_write_plot(st, plot)}")


def _experiments_table(st: Any, targets: list[str]) -> Any:
    from rich.table import Table

    table = Table(title="measured rows (experiments)", title_justify="left")
    for col in ("#", "batch", "round", "formula"):
        table.add_column(col)
    for t in targets:
        table.add_column(f"{t} measured / predicted [90%]", no_wrap=True)
        table.add_column("best so far")
    for _, row in st.experiments.iterrows():
        cells = [str(row["experiment"]), str(row["batch"]), _fmt(row["round"]), str(row["formula"])]
        for t in targets:
            cells.append(
                f"{_fmt(row[t])} / {_fmt(row[f'{t}_predicted'])} "
                f"[{_fmt(row[f'{t}_lower_90'])}, {_fmt(row[f'{t}_upper_90'])}]"
            )
            cells.append(_fmt(row[f"{t}_best_so_far"]))
        table.add_row(*cells)
    return table


def list_campaigns(store: StoreOption = DEFAULT_STORE) -> None:
    """Campaigns in the store, newest first."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    service = _service(store, None)
    table = Table(title=f"campaigns in {store}", title_justify="left")
    for col in ("name", "id", "spec", "objectives", "rounds", "measured rows"):
        table.add_column(col)
    for record in service.recent():
        table.add_row(
            record.name,
            record.id,
            str(record.spec.get("name")),
            ", ".join(o["target"] for o in record.objectives),
            str(len(service.store.rounds(record.id))),
            str(len(service.store.results(record.id, accepted_only=True))),
        )
    console.print(table)


campaign_app.command("new")(new)
campaign_app.command("propose")(propose)
campaign_app.command("add-results")(add_results)
campaign_app.command("status")(status)
campaign_app.command("history")(history)
campaign_app.command("list")(list_campaigns)


def register(app: typer.Typer) -> None:
    """Add ``nascreen campaign ...`` to the CLI."""
    app.add_typer(campaign_app, name="campaign")
