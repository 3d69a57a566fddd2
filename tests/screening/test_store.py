"""The chunk store: atomic chunk files, manifest checks on resume, streaming export."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from chunk_scorers import arithmetic_chunk

from screening.chunks import ChunkRange, plan_chunks
from screening.store import ChunkStore, Manifest, ManifestMismatchError, spec_fingerprint


def _manifest(**changes: object) -> Manifest:
    base: dict[str, object] = {
        "spec_hash": "a" * 64,
        "model_versions": {"average_voltage": "3"},
        "chunk_size": 10,
        "n_candidates": 35,
    }
    base.update(changes)
    return Manifest(**base)  # type: ignore[arg-type]


def test_plan_chunks_covers_every_index_once() -> None:
    chunks = plan_chunks(35, 10)
    assert [(c.start, c.stop) for c in chunks] == [(0, 10), (10, 20), (20, 30), (30, 35)]
    assert [c.index for c in chunks] == [0, 1, 2, 3]
    assert plan_chunks(0, 10) == []
    with pytest.raises(ValueError, match="chunk_size"):
        plan_chunks(10, 0)


def test_spec_fingerprint_is_canonical() -> None:
    a = {"host": "Na0.67MnO2", "dopants": ["Ti", "Mg"], "grid": {"step": 0.05, "max": 0.2}}
    b = {"grid": {"max": 0.2, "step": 0.05}, "dopants": ["Ti", "Mg"], "host": "Na0.67MnO2"}
    assert spec_fingerprint(a) == spec_fingerprint(b)
    assert spec_fingerprint(a) != spec_fingerprint({**a, "dopants": ["Mg", "Ti"]})
    assert spec_fingerprint(a) != spec_fingerprint({**a, "grid": {"step": 0.050000001, "max": 0.2}})


def test_write_marks_chunk_complete_and_reads_back_in_order(tmp_path: Path) -> None:
    store = ChunkStore(tmp_path)
    assert store.open(_manifest(), resume=True) == set()
    chunks = plan_chunks(35, 10)
    for chunk in reversed(chunks):  # finish out of order, as Ray does
        store.write_chunk(chunk, arithmetic_chunk(chunk.start, chunk.stop))
    assert store.completed() == {0, 1, 2, 3}
    scored = store.read("scored", columns=["candidate_id", "formula", "not_a_column"])
    assert list(scored.columns) == ["candidate_id", "formula"]
    rejected = store.read("rejected")
    assert sorted(scored["candidate_id"].tolist() + rejected["candidate_id"].tolist()) == list(range(35))
    assert scored["candidate_id"].is_monotonic_increasing
    assert store.count_rows("scored") == len(scored)
    assert store.value_counts("rejected", "reason") == {"not charge balanced: needs Mn above +4": 5}
    # no temporary files are left behind
    assert not [p for p in store.chunk_dir.iterdir() if p.name.startswith(".")]


def test_a_chunk_without_its_scored_file_is_not_complete(tmp_path: Path) -> None:
    store = ChunkStore(tmp_path)
    store.open(_manifest(), resume=True)
    store.write_chunk(ChunkRange(0, 0, 10), arithmetic_chunk(0, 10))
    (store.chunk_dir / "chunk-000000.scored.parquet").unlink()  # as if killed between the two writes
    assert store.completed() == set()


def test_resume_keeps_matching_chunks(tmp_path: Path) -> None:
    store = ChunkStore(tmp_path)
    store.open(_manifest(), resume=True)
    store.write_chunk(ChunkRange(1, 10, 20), arithmetic_chunk(10, 20))
    assert ChunkStore(tmp_path).open(_manifest(), resume=True) == {1}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"spec_hash": "b" * 64}, "spec changed"),
        ({"model_versions": {"average_voltage": "4"}}, "model version of average_voltage changed"),
        ({"chunk_size": 20}, "chunk size changed"),
    ],
)
def test_resume_refuses_a_different_spec_or_model(tmp_path: Path, change: dict, message: str) -> None:
    store = ChunkStore(tmp_path)
    store.open(_manifest(), resume=True)
    store.write_chunk(ChunkRange(0, 0, 10), arithmetic_chunk(0, 10))
    with pytest.raises(ManifestMismatchError, match=message) as info:
        ChunkStore(tmp_path).open(_manifest(**change), resume=True)
    assert "--no-resume" in str(info.value)
    assert store.completed() == {0}  # refusing deletes nothing
    # starting fresh discards the old chunks and records the new manifest
    assert ChunkStore(tmp_path).open(_manifest(**change), resume=False) == set()
    assert store.completed() == set()
    assert store.read_manifest() == _manifest(**change)


def test_export_streams_chunks_into_one_parquet_and_csv(tmp_path: Path) -> None:
    store = ChunkStore(tmp_path / "screen")
    store.open(_manifest(), resume=True)
    for chunk in plan_chunks(35, 10):
        store.write_chunk(chunk, arithmetic_chunk(chunk.start, chunk.stop))
    n = store.export("rejected", tmp_path / "rejected.parquet", tmp_path / "rejected.csv")
    assert n == 5
    from_parquet = pq.read_table(tmp_path / "rejected.parquet").to_pandas()
    from_csv = pd.read_csv(tmp_path / "rejected.csv")
    assert from_parquet["candidate_id"].tolist() == [3, 10, 17, 24, 31]
    pd.testing.assert_frame_equal(from_parquet, from_csv)
