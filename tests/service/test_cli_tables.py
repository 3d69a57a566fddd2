"""service.cli.tables: the CSV rows it assembles are Arrow's CSV writer's bytes; batch sizes; Parquet."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.cli import tables
from service.cli.tables import (
    CSV_BLOCK_BYTES,
    MIN_CSV_BLOCK_BYTES,
    MIN_PARQUET_BATCH_ROWS,
    PARQUET_BATCH_ROWS,
    TableWriter,
    batch_limit,
    encode_csv,
    float_column,
    float_columns,
    open_table,
    repeating_columns,
)

_SPECIAL = [
    np.nan,
    np.inf,
    -np.inf,
    -0.0,
    0.0,
    1e-5,
    1e-6,
    1e-7,
    1e15,
    1e16,
    1e21,
    5e-324,
    1.7976931348623157e308,
]
_TEXT = ["a", "", 'x,"y"', "line\nbreak", "cr\r", "nul\x00", "é", '"', "  ", None]


def arrow_csv(batch: pa.RecordBatch) -> bytes:
    sink = io.BytesIO()
    pa_csv.write_csv(batch, sink, pa_csv.WriteOptions(include_header=False))
    return sink.getvalue()


def mixed_batch(n: int, seed: int) -> pa.RecordBatch:
    rng = np.random.default_rng(seed)
    spread = rng.normal(size=n) * 10.0 ** rng.integers(-30, 30, n)  # all distinct: formatted per cell
    few = rng.choice([*_SPECIAL, 1.5, 2.0, 0.1, 9.0], size=n)  # repeated: formatted once per value
    whole = rng.integers(-5, 5, n).astype(float)
    texts = [_TEXT[i % len(_TEXT)] for i in range(n)]
    return pa.record_batch(
        [
            pa.array(texts),
            pa.array(spread),
            pa.array(few),
            pa.array(few, mask=np.isnan(few)),  # NaN as null: an empty cell
            pa.array(whole),
            pa.array(spread.astype(np.float32)),
            pa.array(rng.integers(-(10**12), 10**12, n)),
            pa.array(rng.random(n) < 0.5),
            pa.array([None if i % 3 == 0 else bool(i % 2) for i in range(n)], pa.bool_()),
            pa.array(texts, pa.large_string()),
        ],
        names=list("abcdefghij"),
    )


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")
@pytest.mark.parametrize("n", [1, 7, 3000])
def test_assembled_rows_are_arrows_bytes(n: int) -> None:
    batch = mixed_batch(n, seed=n)
    assert tables._assembled(batch.schema)  # the fast path is the one under test
    assert encode_csv(batch, header=False) == arrow_csv(batch)
    assert encode_csv(batch.slice(1), header=False) == arrow_csv(batch.slice(1))  # an offset batch
    one = batch.select(["b"])  # a single column: its line ends are the only separators
    assert encode_csv(one, header=False) == arrow_csv(one)


@settings(max_examples=40, deadline=None)
@given(
    texts=st.lists(st.text(st.characters(blacklist_categories=("Cs",)), max_size=8), min_size=1, max_size=20),
    numbers=st.data(),
)
def test_property_assembled_rows_are_arrows_bytes(texts: list[str], numbers: st.DataObject) -> None:
    values = numbers.draw(st.lists(st.floats(width=64), min_size=len(texts), max_size=len(texts)))
    batch = pa.record_batch(
        [pa.array(texts), pa.array(values), pa.array(values, mask=np.isnan(values)), pa.array(texts)],
        names=["t", "x", "y", "error"],
    )
    assert encode_csv(batch, header=False) == arrow_csv(batch)


def test_other_column_types_go_through_arrows_writer() -> None:
    batch = pa.record_batch(
        [pa.array(["a", "b"]), pa.array([0, 1], pa.date32()), pa.array([1.5, None])], names=["s", "d", "x"]
    )
    assert not tables._assembled(batch.schema)
    assert encode_csv(batch, header=False) == arrow_csv(batch) == b'"a",1970-01-01,1.5\n"b",1970-01-02,\n'
    assert encode_csv(batch.slice(0, 0), header=False) == b""


def test_float_columns_equal_float_column() -> None:
    matrix = np.stack(
        [np.array(_SPECIAL), np.full(len(_SPECIAL), np.nan), np.arange(len(_SPECIAL)) / 3], axis=1
    )
    got = float_columns(matrix)
    assert all(a.equals(float_column(c)) for a, c in zip(got, matrix.T, strict=True))
    assert got[1].null_count == len(_SPECIAL) and got[2].null_count == 0


def test_batch_limit() -> None:
    assert batch_limit(100 << 20, 16, CSV_BLOCK_BYTES, MIN_CSV_BLOCK_BYTES) == CSV_BLOCK_BYTES  # long file
    assert batch_limit(6 << 20, 16, CSV_BLOCK_BYTES, MIN_CSV_BLOCK_BYTES) == (6 << 20) // 16
    assert batch_limit(100_000, 16, CSV_BLOCK_BYTES, MIN_CSV_BLOCK_BYTES) == MIN_CSV_BLOCK_BYTES  # tiny file
    assert batch_limit(200_000, 1, PARQUET_BATCH_ROWS, MIN_PARQUET_BATCH_ROWS) == PARQUET_BATCH_ROWS
    assert batch_limit(200_000, 16, PARQUET_BATCH_ROWS, MIN_PARQUET_BATCH_ROWS) == 12_500
    assert batch_limit(10, 16, 2048, MIN_CSV_BLOCK_BYTES) == 2048  # a limit below the floor wins


def test_min_batches_cuts_a_short_table_finer(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    rows = [f"Na{i % 9 + 1}Mn{i % 7 + 1}O{i % 5 + 1}" for i in range(60_000)]
    src.write_text("formula\n" + "\n".join(rows) + "\n")  # ~0.6 MB: one batch by default
    counts = {m: [b.num_rows for b in open_table(src, min_batches=m).batches()] for m in (1, 8)}
    assert len(counts[1]) == 1 and len(counts[8]) >= 8
    assert sum(counts[8]) == len(rows)
    back = pa.concat_arrays([b.column(0) for b in open_table(src, min_batches=8).batches()])
    assert back.to_pylist() == rows  # same rows, same order
    pq.write_table(pa.table({"formula": rows}), tmp_path / "in.parquet")
    sizes = [b.num_rows for b in open_table(tmp_path / "in.parquet", min_batches=16).batches()]
    assert sizes[0] == 60_000 // 16 and sum(sizes) == len(rows)


def test_parquet_dictionary_only_for_repeating_columns(tmp_path: Path) -> None:
    n = 1000
    batch = pa.record_batch(
        [
            pa.array([f"f{i}" for i in range(n)]),
            pa.array(np.arange(n) / 7),
            pa.array([""] * n),
            pa.array(np.arange(n) % 3.0),
        ],
        names=["formula", "x", "error", "few"],
    )
    assert repeating_columns(batch) == ["error", "few"]
    out = tmp_path / "out.parquet"
    with TableWriter(out) as writer:
        writer.start(batch.schema)
        writer.write(batch)
        writer.write(batch)
    assert pq.read_table(out).equals(pa.Table.from_batches([batch, batch]))
    meta = pq.ParquetFile(out).metadata.row_group(0)
    dictionary = {meta.column(i).path_in_schema for i in range(4) if meta.column(i).has_dictionary_page}
    assert dictionary == {"error", "few"}


def test_parquet_without_rows_keeps_its_columns(tmp_path: Path) -> None:
    schema = pa.schema([("formula", pa.string()), ("x", pa.float64())])
    out = tmp_path / "empty.parquet"
    with TableWriter(out) as writer:
        writer.start(schema)
    table = pq.read_table(out)
    assert table.num_rows == 0 and table.schema.equals(schema)
