"""`nascreen data summary` and `nascreen data curate`: the project's curated data sets.

The data directory defaults to the repository's data/ (next to the installed packages) and can be moved
with --data-dir or the NASCREEN_DATA_DIR environment variable (read here only, never in the library).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

import models

data_app = typer.Typer(
    name="data",
    help="The curated training tables: summary, and rebuilding them from data/raw.",
    no_args_is_help=True,
)

DEFAULT_DATA_DIR = Path(models.__file__).resolve().parents[1] / "data"

DataDirOption = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        envvar="NASCREEN_DATA_DIR",
        file_okay=False,
        help="Data directory holding raw/ and curated/ (default: the repository's data/).",
    ),
]


def _fmt(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.3g}"


@data_app.command("summary")
def summary(
    data_dir: DataDirOption = DEFAULT_DATA_DIR,
    report: Annotated[
        bool, typer.Option("--report", help="Also show what curation dropped, merged and filled.")
    ] = False,
) -> None:
    """Per target: rows, distinct formulas, Na rows, sources, value range (from data/curated)."""
    from rich.console import Console
    from rich.table import Table

    from models.data import dataset_hash, load_curated, summarize_table
    from models.data.loader import CURATED_DIR, SUMMARY_FILE, read_raw_csv
    from models.targets import TargetName

    console = Console()
    table = Table(title=f"curated data in {data_dir / CURATED_DIR}")
    for col in ("target", "rows", "formulas", "Na rows", "sources", "value range"):
        table.add_column(col, justify="left" if col in ("target", "value range") else "right")
    hashes = []
    for target in TargetName:
        try:
            df = load_curated(target, data_dir)
        except FileNotFoundError as err:
            raise typer.BadParameter(str(err), param_hint="--data-dir") from None
        s = summarize_table(target, df)
        table.add_row(
            target.value,
            str(s.rows),
            str(s.distinct_formulas),
            str(s.na_rows),
            str(s.sources),
            f"{_fmt(s.value_min)} .. {_fmt(s.value_max)} {s.unit}",
        )
        hashes.append(f"{target.value}={dataset_hash(df)}")
    console.print(table)
    console.print("content hashes: " + ", ".join(hashes))
    if report:
        counts = read_raw_csv(data_dir / CURATED_DIR / SUMMARY_FILE)
        rt = Table(title="curation report (raw rows per action and reason)")
        for col in ("target", "dataset", "action", "reason", "rows"):
            rt.add_column(col, justify="right" if col == "rows" else "left", overflow="fold")
        for row in counts.itertuples(index=False):
            rt.add_row(*(str(v) for v in row))
        console.print(rt)


@data_app.command("curate")
def curate(
    data_dir: DataDirOption = DEFAULT_DATA_DIR,
    check: Annotated[
        bool,
        typer.Option("--check", help="Do not write: fail if the stored tables differ from a fresh curation."),
    ] = False,
) -> None:
    """Rebuild data/curated/<target>.csv and the curation report from the raw files under data/raw."""
    from rich.console import Console

    from models.data import curate_all, curated_path, dataset_hash, write_curated
    from models.data.loader import to_csv_text

    console = Console()
    curated = curate_all(data_dir)
    if check:
        stale = []
        for target, df in curated.tables.items():
            path = curated_path(target, data_dir)
            if not path.is_file() or path.read_text(encoding="utf-8") != to_csv_text(df):
                stale.append(path)
        if stale:
            console.print(f"[red]stale curated tables:[/red] {', '.join(map(str, stale))}")
            raise typer.Exit(code=1)
        console.print("curated tables reproduce from the raw files")
        return
    for path in write_curated(curated, data_dir):
        console.print(f"wrote {path}")
    for target, df in curated.tables.items():
        console.print(f"{target.value}: {len(df)} rows, hash {dataset_hash(df)}")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
