"""`nascreen demo`: the README's main job on the embedded defaults.

Shipped data -> curated-data summary -> featurisation example -> champion models (trained and registered in
the local SQLite MLflow store when none are) -> a seed-family screen on embedded local Ray -> top candidates
-> one campaign loop on the P2 example (propose, add the seed paper's two published points, propose again).
Every step is the same code path as its own command; this module only chains them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from service.cli.models import DEFAULT_DATA_DIR, PROJECT_ROOT, TrackingOption

EXAMPLES = PROJECT_ROOT / "examples"
DEFAULT_SPEC = EXAMPLES / "specs" / "p2_na0.6li0.2mn0.8o2_dopants.yaml"


def demo(
    spec: Annotated[
        Path, typer.Option(exists=True, dir_okay=False, help="Screening spec to run after training.")
    ] = DEFAULT_SPEC,
    executor: Annotated[str, typer.Option(help="'ray' (embedded local Ray) or 'local'.")] = "ray",
    out: Annotated[
        Path, typer.Option(file_okay=False, help="Where the demo writes its files.")
    ] = PROJECT_ROOT / "out" / "demo",
    tracking_uri: TrackingOption = None,
) -> None:
    """Run the main job: data summary, featurisation example, train if needed, screen, top candidates."""
    from rich.console import Console
    from rich.rule import Rule

    from models.targets import TargetName
    from models.tracking import champion_version
    from service.cli.data import summary
    from service.cli.featurize import featurize_command
    from service.cli.models import list_models, resolve_tracking_uri, train_and_register
    from service.cli.screen import screen

    console = Console()
    out.mkdir(parents=True, exist_ok=True)

    console.print(Rule("1/5  curated training data (data/curated, built from data/raw)"))
    summary(data_dir=DEFAULT_DATA_DIR, report=False)

    console.print(Rule("2/5  featurisation example (examples/compositions.csv, bad rows included)"))
    features_csv = out / "features.csv"
    featurize_command(EXAMPLES / "compositions.csv", features_csv, features="magpie")

    console.print(Rule("3/5  champion models (trained and registered once, then reused)"))
    uri = resolve_tracking_uri(tracking_uri)
    missing = [t for t in TargetName if champion_version(t, uri) is None]
    if missing:
        train_and_register(missing, tracking_uri=uri, data_dir=DEFAULT_DATA_DIR, console=console)
    list_models(tracking_uri=uri)

    console.print(
        Rule(f"4/5  screen {spec.name} (ranked as the spec says: the P2 example by change vs host)")
    )
    screen(
        spec,
        executor=executor,
        address=None,
        out=out / spec.stem,
        top=15,
        chunk_size=None,
        resume=True,
        num_cpus=None,
        tracking_uri=uri,
        train_if_missing=True,
        data_dir=DEFAULT_DATA_DIR,
        log_to_mlflow=True,
    )
    _campaign_step(console, out, uri)


def _campaign_step(console: Any, out: Path, uri: str) -> None:
    """The README's P2 campaign walk-through in a store of the demo's own (recreated on each run)."""
    from rich.rule import Rule

    from service.cli import campaign

    console.print(Rule("5/5  campaign: propose 4, add measured rows, propose the next 4"))
    store = out / "campaigns.db"
    for leftover in out.glob("campaigns.db*"):
        leftover.unlink()
    campaign.new(
        "demo-p2",
        spec_path=DEFAULT_SPEC,
        objective=["capacity_retention:max"],
        acquisition=None,
        kappa=None,
        diversity=None,
        explore=False,
        seed=0,
        reference=None,
        store=store,
        tracking_uri=uri,
    )
    campaign.propose("demo-p2", k=4, output=out / "campaign_round1.csv", store=store, tracking_uri=uri)
    campaign.add_results(
        "demo-p2",
        EXAMPLES / "campaign_results_p2.csv",
        data_dir=DEFAULT_DATA_DIR,
        store=store,
        tracking_uri=uri,
    )
    campaign.propose("demo-p2", k=4, output=out / "campaign_round2.csv", store=store, tracking_uri=uri)
    campaign.status("demo-p2", plot=out / "campaign_best_so_far.png", store=store)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
