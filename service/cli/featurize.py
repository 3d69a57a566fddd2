"""`nascreen featurize INPUT.csv --features magpie -o OUT.csv`: formulas in, matminer-named features out.

One output row per input row, in input order, input columns kept, then the feature columns, then an
``error`` column: "" for rows that featurised, the reason for rows that did not (their features are
empty). A bad row never stops the others. The formula column is read as text, so "NaN" is sodium nitride
and an empty cell is reported as an empty formula.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

_FEATURES_HELP = (
    "Feature set: magpie, stoichiometry, valence_orbital, oxidation, composite "
    "(or a versioned name such as magpie_v1)."
)


def read_formula_csv(path: Path, formula_column: str) -> pd.DataFrame:
    """The CSV as a DataFrame, with ``formula_column`` read verbatim as strings (no NA conversion)."""
    import pandas as pd

    header = pd.read_csv(path, nrows=0)
    if formula_column not in header.columns:
        raise typer.BadParameter(
            f"{path} has no {formula_column!r} column (columns: {', '.join(map(str, header.columns))})",
            param_hint="INPUT",
        )
    df = pd.read_csv(path)
    df[formula_column] = pd.read_csv(path, usecols=[formula_column], dtype=str, keep_default_na=False)[
        formula_column
    ]
    return df


def featurize_command(
    input_csv: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, readable=True, help="CSV with a formula column."),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", dir_okay=False, help="Output CSV (- for stdout).")
    ],
    features: Annotated[str, typer.Option("--features", "-f", help=_FEATURES_HELP)] = "magpie",
    formula_column: Annotated[
        str, typer.Option("--formula-column", help="Name of the formula column.")
    ] = "formula",
    reference: Annotated[
        bool,
        typer.Option("--reference", help="Compute with matminer's own featurizers (slow; the reference)."),
    ] = False,
) -> None:
    """Featurise the formulas of a CSV with a named feature set (matminer's column names)."""
    import pandas as pd

    from featurize.featuresets import get_feature_set
    from featurize.transformer import featurize_formulas

    try:
        fs = get_feature_set(features)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--features") from None
    df = read_formula_csv(input_csv, formula_column)
    clash = [c for c in [*fs.feature_labels(), "error"] if c in df.columns]
    if clash:
        raise typer.BadParameter(f"{input_csv} already has output columns: {', '.join(clash[:5])}")

    start = time.perf_counter()
    batch = featurize_formulas(list(df[formula_column]), fs.name, reference=reference)
    elapsed = time.perf_counter() - start
    out = pd.concat([df, batch.to_frame(index=df.index)], axis=1)
    if str(output) == "-":
        typer.echo(out.to_csv(index=False), nl=False)
    else:
        out.to_csv(output, index=False)

    path = "matminer reference" if reference else "fast path"
    typer.echo(
        f"{len(df)} rows, {fs.name} ({len(fs.feature_labels())} features, {path}) in {elapsed:.2f} s; "
        f"{batch.n_failed} failed" + ("" if str(output) == "-" else f" -> {output}"),
        err=True,
    )
    for row, reason in list(batch.failures().items())[:10]:
        typer.echo(f"  row {row}: {reason}", err=True)
    if batch.n_failed > 10:
        typer.echo(f"  ... {batch.n_failed - 10} more (see the error column)", err=True)


def register(app: typer.Typer) -> None:
    app.command("featurize")(featurize_command)
