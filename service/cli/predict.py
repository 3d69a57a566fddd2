"""`nascreen predict INPUT --target T -o OUT.csv|OUT.parquet`: batch prediction of a CSV or Parquet table.

OUT keeps every input row and column in input order (CSV cells as their exact text) and adds
``prediction, std, lower_90, upper_90, in_domain, domain_reason, model_version, error``. A row that cannot
be predicted (bad formula, missing or non-numeric condition, ...) keeps its place with the reason in
``error``. The table is read and written in batches (``service.cli.tables``), so memory stays bounded.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from service.cli.models import TrackingOption, resolve_tracking_uri

if TYPE_CHECKING:  # Arrow is imported by the command, so that `nascreen --help` stays fast
    import pyarrow as pa

_NUMERIC = ("prediction", "std", "lower_90", "upper_90")


def answer_columns(answers: Any) -> list[pa.Array]:
    """The predictor's output frame as Arrow columns (NaN numbers -> missing)."""
    import pyarrow as pa

    from models.predictor import OUTPUT_COLUMNS
    from service.cli.tables import float_column

    out = []
    for column in OUTPUT_COLUMNS:
        values = answers[column].to_numpy()
        if column in _NUMERIC:
            out.append(float_column(values))
        elif column == "in_domain":
            out.append(pa.array(values, type=pa.bool_()))
        else:
            out.append(pa.array([str(v) for v in values], type=pa.string()))
    return out


def output_schema(input_schema: pa.Schema) -> pa.Schema:
    import pyarrow as pa

    from models.predictor import OUTPUT_COLUMNS

    kinds = {c: pa.float64() for c in _NUMERIC} | {"in_domain": pa.bool_()}
    return pa.schema([*input_schema, *(pa.field(c, kinds.get(c, pa.string())) for c in OUTPUT_COLUMNS)])


def predict(
    input_table: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, readable=True, help="CSV or Parquet with a formula column"
        ),
    ],
    target: Annotated[
        str, typer.Option("--target", "-t", help="ionic_conductivity | capacity_retention | average_voltage")
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", dir_okay=False, help="Output: .parquet/.pq is Parquet, else CSV")
    ],
    tracking_uri: TrackingOption = None,
) -> None:
    """Predict every row of INPUT; OUT keeps every input row and column in order and adds prediction,
    std, lower_90, upper_90, in_domain, domain_reason, model_version, error."""
    import pyarrow as pa
    from rich.console import Console

    from models.predictor import OUTPUT_COLUMNS, load_predictors
    from models.targets import get_target
    from models.tracking import NoChampionError
    from service.cli.tables import ProgressBar, TableError, TableWriter, open_table

    console = Console(stderr=True)
    try:
        name = get_target(target).name
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--target") from None
    try:
        source = open_table(input_table, text_columns=["formula"])
    except TableError as exc:
        raise typer.BadParameter(str(exc), param_hint="INPUT_TABLE") from None
    clash = [c for c in OUTPUT_COLUMNS if c in source.columns]
    if clash:
        source.close()
        raise typer.BadParameter(
            f"{input_table} already has output column(s) {', '.join(clash)}", param_hint="INPUT_TABLE"
        )
    try:
        predictor = load_predictors([name], resolve_tracking_uri(tracking_uri))[name]
    except NoChampionError as exc:
        source.close()
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(code=1) from None

    start = time.perf_counter()
    n_bad = n_out = 0
    try:
        with TableWriter(output) as writer, ProgressBar(source, f"predict {input_table.name}") as bar:
            writer.start(output_schema(source.schema))
            for batch in source.batches():
                answers = predictor.predict_frame(batch.to_pandas())
                bad = answers["error"] != ""
                n_bad += int(bad.sum())
                n_out += int((~answers["in_domain"] & ~bad).sum())
                columns = [*batch.columns, *answer_columns(answers)]
                writer.write(pa.RecordBatch.from_arrays(columns, schema=writer.schema))
                bar.update(writer.rows)
    except TableError as exc:
        console.print(f"[red]error: {exc}[/red]")
        raise typer.Exit(code=1) from None
    console.print(
        f"{writer.rows} rows -> {output} (model {predictor.target.value} v{predictor.model_version}) in "
        f"{time.perf_counter() - start:.2f} s; {n_bad} rows with errors, {n_out} predicted out of domain"
    )


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)
