"""Reading and writing the tables of `nascreen featurize` and `nascreen predict`: CSV or Parquet, in batches.

One module for both commands (and only the CLI imports it: the core layers take and return frames and
arrays, never files).

Reading (``open_table``):
- The format is recognised by content: a file that starts with Parquet's magic ``PAR1`` is Parquet,
  anything else is CSV. Either way the table is read in batches of Arrow record batches, so a file of
  millions of rows is processed in bounded memory.
- CSV is RFC 4180, UTF-8 (a BOM is skipped): a cell that contains a comma, a double quote, a CR or a line
  break must be quoted (as every CSV writer does); inside quotes it is kept byte for byte. An unquoted
  CR, LF or CRLF ends a row. Every cell is read as text, exactly as written: "NaN" stays the text "NaN"
  (sodium nitride), "" stays "", "1_000" stays "1_000", a NUL byte stays in the cell. A blank line is a
  row whose cells are all empty (it is reported as such, never dropped). A row with a different number of
  cells than the header cannot be aligned to the columns: the file is refused with the row's number and
  text, before anything is written in its place.
- Parquet keeps its column types; the formula column must be text.

Writing (``TableWriter``): the format follows the output name (``.parquet`` / ``.pq`` -> Parquet, else CSV;
``-`` is CSV on stdout). CSV is written by Arrow: header, then one line per row, text cells quoted (so a
CR or a comma inside a cell can never split a row), numbers in their shortest round-trip form
(``0.1``, ``9``, ``1e-05`` reads back as the identical float64), missing numbers as empty cells, booleans
``true`` / ``false``. Output goes to a hidden temporary file beside the target that is renamed into place
when the command succeeds, so a failed run never leaves a half-written file under the requested name.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

Format = Literal["csv", "parquet"]
PARQUET_SUFFIXES = (".parquet", ".pq")
STDOUT = "-"
#: Bytes of CSV per batch (Arrow's block size): ~30,000 rows of short formula files.
CSV_BLOCK_BYTES = 1 << 20
#: Rows per Parquet batch.
PARQUET_BATCH_ROWS = 32_768
#: Smallest batches when a table is cut finer (``open_table(min_batches=...)``, for worker processes):
#: below this the fixed costs per batch (features are computed per batch, results cross a pipe) grow.
MIN_CSV_BLOCK_BYTES = 64 << 10
MIN_PARQUET_BATCH_ROWS = 2048
#: Inputs smaller than this (bytes of CSV or rows of Parquet x 32) get no progress bar.
PROGRESS_MIN_BYTES = 8 << 20


class TableError(ValueError):
    """A table that cannot be read or written, with a message naming the file."""


def output_format(path: Path | str) -> Format:
    """The format an output name asks for: ``.parquet`` / ``.pq`` -> Parquet, anything else CSV."""
    return "parquet" if str(path).lower().endswith(PARQUET_SUFFIXES) else "csv"


def _is_parquet(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == b"PAR1"


@dataclass
class TableSource:
    """An input table opened for batched reading; ``batches()`` may be iterated once."""

    path: Path
    format: Format
    schema: pa.Schema
    size: int  # progress total: bytes (CSV) or rows (Parquet)
    _handle: Any = field(default=None, repr=False)
    _reader: Any = field(default=None, repr=False)
    batch_rows: int = PARQUET_BATCH_ROWS  # Parquet only (a CSV batch is one block of bytes)
    _done_rows: int = 0

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)

    def position(self) -> int:
        """How far reading has got, in the unit of ``size`` (CSV: bytes read ahead, approximately)."""
        if self.format == "csv":
            return min(int(self._handle.tell()), self.size)
        return self._done_rows

    def batches(self) -> Iterator[pa.RecordBatch]:
        try:
            if self.format == "csv":
                while True:
                    try:
                        batch = self._reader.read_next_batch()
                    except StopIteration:
                        return
                    yield batch
            else:
                for batch in self._reader.iter_batches(batch_size=self.batch_rows):
                    self._done_rows += batch.num_rows
                    yield batch
        except (pa.ArrowInvalid, OSError) as exc:
            raise TableError(f"{self.path}: cannot be read: {_arrow_message(exc)}{_csv_hint(self)}") from None
        finally:
            self.close()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _arrow_message(exc: BaseException) -> str:
    return str(exc).replace("CSV parse error: ", "").strip()


def _csv_hint(source: TableSource) -> str:
    if source.format != "csv":
        return ""
    return (
        " (a CSV row must have as many cells as the header; quote a cell that contains a comma, a quote,"
        " a CR or a line break)"
    )


def batch_limit(total: int, min_batches: int, largest: int, smallest: int) -> int:
    """The batch size (bytes or rows) that cuts ``total`` into at least ``min_batches`` batches: ``largest``
    unless that gives fewer, never below ``smallest`` (nor above ``largest``)."""
    return max(min(largest, total // max(min_batches, 1)), min(smallest, largest))


def open_table(path: Path, *, text_columns: Sequence[str] = (), min_batches: int = 1) -> TableSource:
    """Open ``path`` (CSV or Parquet, by content) for batched reading.

    ``text_columns`` must exist (and, in a Parquet file, hold text); a missing one raises ``TableError``
    naming the file and its columns. CSV cells are all read as exact text (see the module docstring).
    ``min_batches``: cut a short table into at least this many batches (down to ``MIN_CSV_BLOCK_BYTES``
    or ``MIN_PARQUET_BATCH_ROWS``), so that several workers have batches to share."""
    if _is_parquet(path):
        source = _open_parquet(path)
        source.batch_rows = batch_limit(source.size, min_batches, PARQUET_BATCH_ROWS, MIN_PARQUET_BATCH_ROWS)
    else:
        size = os.path.getsize(path)
        source = _open_csv(path, batch_limit(size, min_batches, CSV_BLOCK_BYTES, MIN_CSV_BLOCK_BYTES))
    names = source.columns
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        source.close()
        raise TableError(f"{path} has duplicate column names: {', '.join(map(repr, duplicates))}")
    for column in text_columns:
        if column not in names:
            source.close()
            raise TableError(f"{path} has no {column!r} column (columns: {', '.join(names)})")
        kind = source.schema.field(column).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            source.close()
            raise TableError(f"{path}: column {column!r} must be text, it is {kind}")
    return source


def _open_csv(path: Path, block_bytes: int) -> TableSource:
    parse = pa_csv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False)
    try:
        with pa.OSFile(str(path), "rb") as probe:
            header = pa_csv.open_csv(
                probe, read_options=pa_csv.ReadOptions(block_size=CSV_BLOCK_BYTES), parse_options=parse
            ).schema.names
    except pa.ArrowInvalid as exc:
        message = _arrow_message(exc)
        if "Empty CSV file" in message:
            raise TableError(f"{path} is empty (no header line)") from None
        raise TableError(f"{path}: cannot be read as CSV: {message}") from None
    convert = pa_csv.ConvertOptions(
        column_types={name: pa.string() for name in header},
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    handle = pa.OSFile(str(path), "rb")
    try:
        reader = pa_csv.open_csv(
            handle,
            read_options=pa_csv.ReadOptions(block_size=block_bytes),
            parse_options=parse,
            convert_options=convert,
        )
    except pa.ArrowInvalid as exc:
        handle.close()
        raise TableError(
            f"{path}: cannot be read as CSV: {_arrow_message(exc)}"
            " (quote a cell that contains a comma, a quote, a CR or a line break)"
        ) from None
    return TableSource(path, "csv", reader.schema, os.path.getsize(path), handle, reader)


def _open_parquet(path: Path) -> TableSource:
    try:
        reader = pq.ParquetFile(str(path))
    except (pa.ArrowInvalid, OSError) as exc:
        raise TableError(f"{path}: cannot be read as Parquet: {exc}") from None
    return TableSource(path, "parquet", reader.schema_arrow, reader.metadata.num_rows, None, reader)


def float_column(values: Any) -> pa.Array:
    """A float64 Arrow column with NaN as missing (an empty CSV cell, a Parquet null)."""
    return pa.array(values, type=pa.float64(), from_pandas=True)


def float_columns(matrix: np.ndarray) -> list[pa.Array]:
    """The columns of a (rows, columns) float64 matrix, each as ``float_column`` makes it, from one
    transposed copy (a column of a row-major matrix is strided; a contiguous one becomes Arrow's buffer
    without another copy)."""
    columns = np.ascontiguousarray(np.asarray(matrix, dtype=np.float64).T)
    missing = np.isnan(columns)
    return [
        pa.array(values, mask=mask if mask.any() else None)
        for values, mask in zip(columns, missing, strict=True)
    ]


def encode_csv(batch: pa.RecordBatch | pa.Table, *, header: bool) -> bytes:
    """The CSV bytes of a batch (see the module docstring for the dialect).

    Rows of text, number and boolean columns are assembled from per-cell texts (``_encode_rows``), the
    same bytes as Arrow's CSV writer in less time; a header, or any other column type, goes through
    Arrow's writer itself."""
    if not header and isinstance(batch, pa.RecordBatch) and _assembled(batch.schema):
        try:
            return _encode_rows(batch)
        except (pa.ArrowInvalid, pa.ArrowCapacityError):  # more than 2 GiB of text in one batch
            pass
    sink = io.BytesIO()
    pa_csv.write_csv(batch, sink, pa_csv.WriteOptions(include_header=header))
    return sink.getvalue()


#: A number column whose distinct values are at most this share of its rows is formatted once per
#: distinct value (Magpie: 104 of 132 columns, ~3x faster than formatting every cell).
DISTINCT_SHARE = 0.5


def _is_text(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def _assembled(schema: pa.Schema) -> bool:
    """Whether ``_encode_rows`` writes every column of ``schema`` as Arrow's CSV writer does."""
    plain = (pa.types.is_floating, pa.types.is_integer, pa.types.is_boolean)
    return len(schema) > 0 and all(_is_text(f.type) or any(test(f.type) for test in plain) for f in schema)


def _cell_texts(column: pa.Array) -> pa.Array:
    """Each cell's CSV text, as Arrow's CSV writer renders it (null: null, written as an empty cell).

    Text is quoted with inner quotes doubled; anything else is Arrow's cast to string (the writer's own
    formatting: ``9``, ``0.1``, ``0.00001``, ``1e-7``, ``nan``), for a float column with few distinct
    values formatted once per distinct value and gathered."""
    if _is_text(column.type):
        text = pc.replace_substring(column.cast(pa.string()), '"', '""')
        return pc.binary_join_element_wise('"', text, '"', "")
    if pa.types.is_floating(column.type):
        encoded = pc.dictionary_encode(column)
        if len(encoded.dictionary) <= DISTINCT_SHARE * len(column):
            return pc.cast(encoded.dictionary, pa.string()).take(encoded.indices)
    return pc.cast(column, pa.string())


def _encode_rows(batch: pa.RecordBatch) -> bytes:
    """The CSV rows of ``batch``: its cells' texts joined by commas, one line per row, as one buffer."""
    if batch.num_rows == 0:
        return b""
    cells = [_cell_texts(column) for column in batch.columns]
    cells[-1] = pc.binary_join_element_wise(pc.fill_null(cells[-1], ""), "\n", "")
    lines = pc.binary_join_element_wise(*cells, ",", null_handling="replace", null_replacement="")
    offsets_type = np.int64 if pa.types.is_large_string(lines.type) else np.int32
    offsets = np.frombuffer(lines.buffers()[1], dtype=offsets_type)
    start, end = int(offsets[lines.offset]), int(offsets[lines.offset + len(lines)])
    return lines.buffers()[2][start:end].to_pybytes()


def repeating_columns(batch: pa.RecordBatch) -> list[str]:
    """Columns of ``batch`` with at most ``DISTINCT_SHARE`` distinct values per row."""
    limit = DISTINCT_SHARE * batch.num_rows
    return [
        name
        for name, column in zip(batch.schema.names, batch.columns, strict=True)
        if pc.count_distinct(column, mode="all").as_py() <= limit
    ]


class TableWriter:
    """Write record batches to ``path`` (format from the name, see ``output_format``).

    Use as a context manager: the file appears under its name only when the block exits without an
    exception. CSV batches may also be handed over already encoded (``write_encoded``), which lets worker
    processes do the formatting."""

    def __init__(self, path: Path | str) -> None:
        self.target = str(path)
        self.format: Format = "csv" if self.target == STDOUT else output_format(self.target)
        self._tmp: Path | None = None
        self._out: IO[bytes] | None = None
        self._parquet: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None
        self.rows = 0

    def __enter__(self) -> TableWriter:
        if self.target == STDOUT:
            self._out = sys.stdout.buffer
            return self
        target = Path(self.target)
        if target.is_dir():
            raise TableError(f"{target} is a directory")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._tmp = target.with_name(f".{target.name}.{os.getpid()}.partial")
            if self.format == "csv":
                self._out = open(self._tmp, "wb")  # closed in __exit__
            else:
                self._tmp.touch()
        except OSError as exc:
            raise TableError(f"cannot write {target}: {exc.strerror or exc}") from None
        return self

    @property
    def schema(self) -> pa.Schema:
        """The output columns declared by ``start`` (or taken from the first batch)."""
        if self._schema is None:
            raise RuntimeError("TableWriter.start has not been called")
        return self._schema

    def start(self, schema: pa.Schema) -> None:
        """Declare the output columns (writes the CSV header); called once, before the rows."""
        self._schema = schema
        if self.format == "csv":
            self._write_bytes(encode_csv(schema.empty_table(), header=True))

    def write(self, batch: pa.RecordBatch) -> None:
        if self._schema is None:
            self.start(batch.schema)
        if self.format == "csv":
            self._write_bytes(encode_csv(batch, header=False))
        else:
            self._parquet_writer(batch).write_batch(batch)
        self.rows += batch.num_rows

    def _parquet_writer(self, first: pa.RecordBatch | None) -> pq.ParquetWriter:
        """The Parquet writer, made for the first batch: dictionary encoding only for the columns that
        batch shows to repeat values (for the others Parquet would build a dictionary and drop it)."""
        if self._parquet is None:
            assert self._tmp is not None
            dictionary = [] if first is None else repeating_columns(first)
            self._parquet = pq.ParquetWriter(str(self._tmp), self.schema, use_dictionary=dictionary)
        return self._parquet

    def write_encoded(self, payload: bytes | pa.RecordBatch, rows: int) -> None:
        """A batch already encoded as CSV bytes (CSV output) or a record batch (either output)."""
        if isinstance(payload, pa.RecordBatch):
            self.write(payload)
            return
        if self.format != "csv":
            raise TypeError("encoded CSV bytes for a Parquet output")
        self._write_bytes(payload)
        self.rows += rows

    def _write_bytes(self, data: bytes) -> None:
        assert self._out is not None
        self._out.write(data)

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None and self.format == "parquet" and self._schema is not None:
            self._parquet_writer(None)  # a table without rows is still a Parquet file with its columns
        if self._parquet is not None:
            self._parquet.close()
        if self._out is not None and self.target != STDOUT:
            self._out.close()
        elif self._out is not None:
            self._out.flush()
        if self._tmp is None:
            return
        if kind is None:
            os.replace(self._tmp, self.target)
        else:
            self._tmp.unlink(missing_ok=True)


class ProgressBar:
    """A progress bar on stderr for long inputs, shown only when stderr is a terminal (quiet in pipes,
    logs and tests)."""

    def __init__(self, source: TableSource, description: str, *, enabled: bool | None = None) -> None:
        unit_min = PROGRESS_MIN_BYTES if source.format == "csv" else PROGRESS_MIN_BYTES // 32
        on = sys.stderr.isatty() if enabled is None else enabled
        self.enabled = on and source.size >= unit_min
        self.source = source
        self.description = description
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> ProgressBar:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[rows]:,} rows"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(self.description, total=self.source.size, rows=0)
        return self

    def update(self, rows: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=self.source.position(), rows=rows)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)
