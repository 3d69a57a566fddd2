"""`nascreen featurize INPUT -f magpie -o OUT.csv|OUT.parquet`: formulas in, matminer-named features out.

One output row per input row, in input order, input columns kept as they were read (CSV cells as their
exact text), then the feature columns, then an ``error`` column: "" for rows that featurised, the reason
for rows that did not (their features are empty). A bad row never stops the others. The formula column is
read as text, so "NaN" is sodium nitride and an empty cell is reported as an empty formula.

The table is read and written in batches (``service.cli.tables``), so memory stays bounded whatever the
file size; ``--jobs N`` featurises and formats batches in N processes, this one and N - 1 workers (parsing
is pure Python, so threads would share one core); the table is then cut into at least 8 batches per
process, and the output keeps the input order.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:  # Arrow is imported by the command, so that `nascreen --help` stays fast
    import pyarrow as pa

    from service.cli.tables import TableSource

logger = logging.getLogger(__name__)

_FEATURES_HELP = (
    "Feature set: magpie, stoichiometry, valence_orbital, oxidation, composite "
    "(or a versioned name such as magpie_v1)."
)
#: Failures kept per batch for the console summary (all of them are in the error column).
_SHOWN_FAILURES = 10


@dataclass(frozen=True)
class BatchResult:
    """One featurised batch: the output (a record batch, or its CSV bytes), its size and failures."""

    payload: pa.RecordBatch | bytes
    rows: int
    n_failed: int
    failures: list[tuple[int, str]]  # (row within the batch, reason), the first few


def featurize_batch(
    batch: pa.RecordBatch, formula_column: str, feature_set: str, *, reference: bool, as_csv: bool
) -> BatchResult:
    """Input columns + features + error for one batch (runs in the main process or in a worker)."""
    import pyarrow as pa

    from featurize.transformer import featurize_formulas
    from service.cli.tables import encode_csv, float_columns

    formulas = batch.column(formula_column).to_pylist()
    features = featurize_formulas(formulas, feature_set, reference=reference)
    columns = [*batch.columns, *float_columns(features.X), pa.array(features.errors)]
    names = [*batch.schema.names, *features.feature_names, "error"]
    out = pa.RecordBatch.from_arrays(columns, names=names)
    failures = [(i, e) for i, e in enumerate(features.errors) if e][:_SHOWN_FAILURES]
    payload: pa.RecordBatch | bytes = encode_csv(out, header=False) if as_csv else out
    return BatchResult(payload, batch.num_rows, features.n_failed, failures)


#: Batches per process (at least; a long file has more): the processes finish within about one batch of
#: each other, and the first results arrive early enough for writing to overlap the work.
BATCHES_PER_WORKER = 8


def batches_for(jobs: int) -> int:
    """How many batches to cut a table into at least (one process: as few as the batch limits allow)."""
    return 1 if jobs <= 1 else BATCHES_PER_WORKER * jobs


def warm_up(feature_set: str) -> None:
    """A worker's start: import the feature code and load its element tables before the first batch."""
    from featurize.transformer import featurize_formulas

    featurize_formulas(["NaCl"], feature_set)


def output_schema(source: TableSource, labels: list[str]) -> pa.Schema:
    import pyarrow as pa

    return pa.schema([*source.schema, *(pa.field(n, pa.float64()) for n in labels), ("error", pa.string())])


def _results(
    source: TableSource, formula_column: str, feature_set: str, reference: bool, as_csv: bool, jobs: int
) -> Iterator[BatchResult]:
    """Featurised batches in input order.

    With ``jobs > 1`` this process is one of the ``jobs``: ``jobs - 1`` workers keep up to two batches
    each queued, and whenever they are all busy this process featurises the next batch itself (its own
    results need no pickling across a pipe, and it would otherwise only wait). At most ``4 x jobs``
    batches are held."""
    run = partial(
        featurize_batch,
        formula_column=formula_column,
        feature_set=feature_set,
        reference=reference,
        as_csv=as_csv,
    )
    if jobs <= 1:
        yield from map(run, source.batches())
        return
    import multiprocessing

    workers = jobs - 1
    # spawn, not fork: Arrow's and OpenMP's threads in this process do not survive a fork safely
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, spawn, initializer=warm_up, initargs=(feature_set,)) as pool:
        # every worker starts now, while the first batches are read (the pool would otherwise start one
        # per submitted batch: a short table would start fewer, and a long one pay the rest late)
        for _ in range(workers):
            pool.submit(int)
        warm_up(feature_set)  # this process featurises too (meanwhile the workers start)
        pending: deque[Future[BatchResult] | BatchResult] = deque()
        for batch in source.batches():
            queued = sum(1 for p in pending if isinstance(p, Future) and not p.done())
            pending.append(pool.submit(run, batch) if queued < 2 * workers else run(batch))
            while pending and (len(pending) > 4 * jobs or _ready(pending[0])):
                yield _result(pending.popleft())
        while pending:
            yield _result(pending.popleft())


def _ready(item: Future[BatchResult] | BatchResult) -> bool:
    return not isinstance(item, Future) or item.done()


def _result(item: Future[BatchResult] | BatchResult) -> BatchResult:
    return item.result() if isinstance(item, Future) else item


def featurize_command(
    input_table: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, readable=True, help="CSV or Parquet with a formula column."
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", dir_okay=False, help="Output: .parquet/.pq is Parquet, else CSV (- for stdout)."
        ),
    ],
    features: Annotated[str, typer.Option("--features", "-f", help=_FEATURES_HELP)] = "magpie",
    formula_column: Annotated[
        str, typer.Option("--formula-column", help="Name of the formula column.")
    ] = "formula",
    reference: Annotated[
        bool,
        typer.Option("--reference", help="Compute with matminer's own featurizers (slow; the reference)."),
    ] = False,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            help="Processes, this one included (2: both cores of a 2-core machine; for >~100k rows).",
        ),
    ] = 1,
) -> None:
    """Featurise the formulas of a CSV or Parquet table with a named feature set (matminer's column names)."""
    from featurize.featuresets import get_feature_set
    from service.cli.tables import STDOUT, ProgressBar, TableError, TableWriter, open_table

    try:
        fs = get_feature_set(features)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--features") from None
    try:
        source = open_table(input_table, text_columns=[formula_column], min_batches=batches_for(jobs))
    except TableError as exc:
        raise typer.BadParameter(str(exc), param_hint="INPUT") from None
    labels = fs.feature_labels()
    clash = [c for c in [*labels, "error"] if c in source.columns]
    if clash:
        source.close()
        raise typer.BadParameter(f"{input_table} already has output columns: {', '.join(clash[:5])}")

    start = time.perf_counter()
    rows = n_failed = 0
    failures: list[tuple[int, str]] = []
    try:
        with TableWriter(output) as writer, ProgressBar(source, f"featurize {input_table.name}") as bar:
            writer.start(output_schema(source, labels))
            as_csv = writer.format == "csv"
            for result in _results(source, formula_column, fs.name, reference, as_csv, jobs):
                writer.write_encoded(result.payload, result.rows)
                failures += [(rows + i, e) for i, e in result.failures][: _SHOWN_FAILURES - len(failures)]
                rows += result.rows
                n_failed += result.n_failed
                bar.update(rows)
    except TableError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    elapsed = time.perf_counter() - start

    path = "matminer reference" if reference else "fast path"
    typer.echo(
        f"{rows} rows, {fs.name} ({len(labels)} features, {path}) in {elapsed:.2f} s; "
        f"{n_failed} failed" + ("" if str(output) == STDOUT else f" -> {output}"),
        err=True,
    )
    for row, reason in failures:
        typer.echo(f"  row {row}: {reason}", err=True)
    if n_failed > len(failures):
        typer.echo(f"  ... {n_failed - len(failures)} more (see the error column)", err=True)


def register(app: typer.Typer) -> None:
    app.command("featurize")(featurize_command)
