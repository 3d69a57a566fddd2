"""`nascreen predict INPUT --target T -o OUT.csv|OUT.parquet`: batch prediction of a CSV or Parquet table.

OUT keeps every input row and column in input order (CSV cells as their exact text) and adds
``prediction, std, lower_90, upper_90, in_domain, domain_reason, model_version, error``. A row that cannot
be predicted (bad formula, missing or non-numeric condition, ...) keeps its place with the reason in
``error``. The table is read and written in batches (``service.cli.tables``), so memory stays bounded.

``--reference FORMULA`` (the host) adds the relative columns of ``models.relative.predict_relative``
(``RELATIVE_EXTRA``: delta vs the host under each row's own protocol, its 90% interval, P(better), ...);
``--anchors FILE`` (formula, condition columns, ``measured``) offsets the absolute predictions to the user's
own measured rows (``anchored_*``). A bad reference or anchor stops the command with one line naming it.
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


def relative_columns(relative: Any) -> list[pa.Array]:
    """The ``RELATIVE_EXTRA`` columns of a ``predict_relative`` frame as Arrow columns."""
    import pyarrow as pa

    from models.relative import RELATIVE_EXTRA
    from service.cli.tables import float_column

    out = []
    for column in RELATIVE_EXTRA:
        values = relative[column].to_numpy()
        if column == "reference_formula":
            out.append(pa.array([str(v) for v in values], type=pa.string()))
        elif column == "n_anchors":
            out.append(pa.array(values.astype("int64"), type=pa.int64()))
        else:
            out.append(float_column(values))
    return out


def output_schema(input_schema: pa.Schema, *, relative: bool = False) -> pa.Schema:
    import pyarrow as pa

    from models.predictor import OUTPUT_COLUMNS
    from models.relative import RELATIVE_EXTRA

    kinds = {c: pa.float64() for c in (*_NUMERIC, *RELATIVE_EXTRA)}
    kinds |= {"in_domain": pa.bool_(), "n_anchors": pa.int64(), "reference_formula": pa.string()}
    names = [*OUTPUT_COLUMNS, *(RELATIVE_EXTRA if relative else ())]
    return pa.schema([*input_schema, *(pa.field(c, kinds.get(c, pa.string())) for c in names)])


def read_anchors(path: Path) -> Any:
    """The whole anchors table (the user's measured rows: small) as a frame of text cells."""
    import pandas as pd

    from service.cli.tables import open_table

    source = open_table(path, text_columns=["formula"])
    try:
        frames = [batch.to_pandas() for batch in source.batches()]
    finally:
        source.close()
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=source.columns)


def anchor_problem(predictor: Any, anchor_rows: Any) -> str:
    """Why the anchors cannot anchor (missing column, no rows, a row that cannot be predicted), or ""."""
    from models.relative import MEASURED_COLUMN

    missing = [c for c in ("formula", MEASURED_COLUMN) if c not in anchor_rows.columns]
    if missing:
        have = ", ".join(map(str, anchor_rows.columns))
        return f"no {' or '.join(repr(c) for c in missing)} column (columns: {have})"
    if anchor_rows.empty:
        return "no rows: give at least one measured row, or no --anchors"
    import numpy as np
    import pandas as pd

    errors = predictor.predict_frame(anchor_rows.drop(columns=[MEASURED_COLUMN]))["error"]
    measured = pd.to_numeric(anchor_rows[MEASURED_COLUMN], errors="coerce").to_numpy(float)
    for i, (error, value) in enumerate(zip(errors, measured, strict=True)):
        row = f"anchor row {i + 1} ({anchor_rows['formula'].iloc[i]!r})"
        if error:
            return f"{row}: {error}"
        if not np.isfinite(value):
            return f"{row}: measured={anchor_rows[MEASURED_COLUMN].iloc[i]!r} is not a number"
    return ""


def reference_failure(answers: Any, relative: Any, reference: str) -> str:
    """The reference's error on a row whose candidate was predicted (the reference alone failed), or ""."""
    failed = (answers["error"] == "").to_numpy() & (relative["error"] != "").to_numpy()
    return str(relative["error"].to_numpy()[failed][0]) if failed.any() else ""


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
    reference: Annotated[
        str | None,
        typer.Option(
            "--reference",
            "-r",
            help="Host formula: add delta vs the host under each row's protocol, its 90% interval, p_better",
        ),
    ] = None,
    anchors: Annotated[
        Path | None,
        typer.Option(
            "--anchors",
            exists=True,
            dir_okay=False,
            readable=True,
            help="CSV/Parquet of your measured rows (formula, conditions, measured); needs --reference",
        ),
    ] = None,
) -> None:
    """Predict every row of INPUT; OUT keeps every input row and column in order and adds prediction,
    std, lower_90, upper_90, in_domain, domain_reason, model_version, error (with --reference also
    reference_formula, reference_prediction, delta, delta_std, delta_lower_90, delta_upper_90, p_better,
    anchored_prediction, anchored_lower_90, anchored_upper_90, n_anchors)."""
    from rich.console import Console

    from models.targets import get_target

    console = Console(stderr=True, soft_wrap=True)
    try:
        name = get_target(target).name
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--target") from None
    anchor_rows = _anchor_option(anchors, reference)
    source = _open_input(input_table, reference)
    predictor = _load_predictor(name, tracking_uri, source, console)
    if reference is not None:
        _check_reference(predictor, reference, anchor_rows, anchors, source, console)
    _write_predictions(predictor, source, input_table, output, reference, anchor_rows, console)


def _fail(console: Any, message: str) -> typer.Exit:
    """Print one error line and return the exit to raise."""
    console.print(f"error: {message}", style="red", markup=False, highlight=False)
    return typer.Exit(code=1)


def _anchor_option(anchors: Path | None, reference: str | None) -> Any:
    """The --anchors rows (None without the option); a usage error names the option."""
    from service.cli.tables import TableError

    if anchors is not None and reference is None:
        raise typer.BadParameter("--anchors needs --reference (the host formula)", param_hint="--anchors")
    if anchors is None:
        return None
    try:
        return read_anchors(anchors)
    except TableError as exc:
        raise typer.BadParameter(str(exc), param_hint="--anchors") from None


def _open_input(input_table: Path, reference: str | None) -> Any:
    """The input table, refused when it already carries a column the output would add."""
    from models.predictor import OUTPUT_COLUMNS
    from models.relative import RELATIVE_EXTRA
    from service.cli.tables import TableError, open_table

    try:
        source = open_table(input_table, text_columns=["formula"])
    except TableError as exc:
        raise typer.BadParameter(str(exc), param_hint="INPUT_TABLE") from None
    clash = [c for c in (*OUTPUT_COLUMNS, *(RELATIVE_EXTRA if reference else ())) if c in source.columns]
    if clash:
        source.close()
        raise typer.BadParameter(
            f"{input_table} already has output column(s) {', '.join(clash)}", param_hint="INPUT_TABLE"
        )
    return source


def _load_predictor(name: Any, tracking_uri: str | None, source: Any, console: Any) -> Any:
    """The target's champion predictor; no champion is one line and exit 1."""
    from models.predictor import load_predictors
    from models.tracking import NoChampionError

    try:
        return load_predictors([name], resolve_tracking_uri(tracking_uri))[name]
    except NoChampionError as exc:
        source.close()
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(code=1) from None


def _check_reference(
    predictor: Any, reference: str, anchor_rows: Any, anchors: Path | None, source: Any, console: Any
) -> None:
    """Check the model, the reference and the anchors once, before anything is written: a model trained
    before relative predictions, an unparsable reference or a bad anchor row is one line, no output."""
    import pandas as pd

    from models.relative import MEASURED_COLUMN, predict_relative

    probe = pd.DataFrame({"formula": pd.Series([], dtype=object)})
    if anchor_rows is not None:
        if problem := anchor_problem(predictor, anchor_rows):
            source.close()
            raise _fail(console, f"--anchors {anchors}: {problem}")
        probe = anchor_rows.drop(columns=[MEASURED_COLUMN])
    try:
        answer = predict_relative(predictor, probe, reference, anchors=anchor_rows)
    except ValueError as exc:
        source.close()
        raise _fail(console, str(exc)) from None
    if failure := reference_failure(predictor.predict_frame(probe), answer, reference):
        source.close()
        raise _fail(console, failure)


def _write_predictions(
    predictor: Any,
    source: Any,
    input_table: Path,
    output: Path,
    reference: str | None,
    anchor_rows: Any,
    console: Any,
) -> None:
    """Predict batch by batch into OUTPUT (renamed into place only when every batch is written)."""
    import pyarrow as pa

    from models.relative import predict_relative
    from service.cli.tables import ProgressBar, TableError, TableWriter

    start = time.perf_counter()
    n_bad = n_out = 0
    try:
        with TableWriter(output) as writer, ProgressBar(source, f"predict {input_table.name}") as bar:
            writer.start(output_schema(source.schema, relative=reference is not None))
            for batch in source.batches():
                frame = batch.to_pandas()
                answers = predictor.predict_frame(frame)
                bad = answers["error"] != ""
                n_bad += int(bad.sum())
                n_out += int((~answers["in_domain"] & ~bad).sum())
                columns = [*batch.columns, *answer_columns(answers)]
                if reference is not None:
                    relative = predict_relative(predictor, frame, reference, anchors=anchor_rows)
                    if failure := reference_failure(answers, relative, reference):
                        raise ValueError(failure)
                    columns += relative_columns(relative)
                writer.write(pa.RecordBatch.from_arrays(columns, schema=writer.schema))
                bar.update(writer.rows)
    except TableError as exc:
        console.print(f"[red]error: {exc}[/red]")
        raise typer.Exit(code=1) from None
    except ValueError as exc:  # the reference fails where a candidate under the same protocol did not
        raise _fail(console, str(exc)) from None
    console.print(
        f"{writer.rows} rows -> {output} (model {predictor.target.value} v{predictor.model_version}) in "
        f"{time.perf_counter() - start:.2f} s; {n_bad} rows with errors, {n_out} predicted out of domain"
    )


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)
