"""Tampered, damaged and stray chunk files and manifests: detected on resume and computed again, so a
resumed screen holds every candidate exactly once and never fails on a damaged file."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from chunk_scorers import ArithmeticFactory, arithmetic_chunk, recorded_calls
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from screening.chunks import ChunkRange, ChunkResult, plan_chunks
from screening.runner import LocalExecutor, run_chunks
from screening.store import ChunkIntegrityError, ChunkStore, Manifest

N, SIZE = 35, 10
CHUNKS = plan_chunks(N, SIZE)  # 4 chunks: [0,10) [10,20) [20,30) [30,35)
MANIFEST = Manifest(
    spec_hash="c" * 64, model_versions={"average_voltage": "3"}, chunk_size=SIZE, n_candidates=N
)


def _finished_store(root: Path) -> ChunkStore:
    store = ChunkStore(root)
    store.open(MANIFEST, resume=True)
    for chunk in CHUNKS:
        store.write_chunk(chunk, arithmetic_chunk(chunk.start, chunk.stop))
    return store


def _resume(root: Path, calls: Path) -> tuple[set[int], ChunkStore]:
    """Reopen ``root`` as a rerun does, compute what is not reusable, return (reused, store)."""
    store = ChunkStore(root)
    reusable = store.open(MANIFEST, resume=True)
    report = run_chunks(
        CHUNKS, ArithmeticFactory(calls_file=calls), LocalExecutor(), store, reusable=reusable
    )
    assert not report.failed
    return reusable, store


def _all_ids(store: ChunkStore) -> list[int]:
    ids = store.read("scored")["candidate_id"].tolist() + store.read("rejected")["candidate_id"].tolist()
    return sorted(ids)


def _path(root: Path, index: int, kind: str) -> Path:
    return root / "chunks" / f"chunk-{index:06d}.{kind}.parquet"


def _drop_a_row(path: Path) -> None:
    table = pq.read_table(path)
    pq.write_table(table.slice(0, table.num_rows - 1), path)


def _empty(path: Path) -> None:
    table = pq.read_table(path)
    pq.write_table(table.slice(0, 0), path)


def _garbage(path: Path) -> None:
    path.write_bytes(b"PAR1 this is not a parquet file")


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _delete(path: Path) -> None:
    path.unlink()


def _duplicate_a_row(path: Path) -> None:
    table = pq.read_table(path)
    pq.write_table(pa.concat_tables([table, table.slice(0, 1)]), path)


TAMPERS: dict[str, Callable[[Path], None]] = {
    "drop a row": _drop_a_row,
    "zero rows": _empty,
    "garbage": _garbage,
    "truncated": _truncate,
    "one byte flipped": _flip_a_byte,
    "deleted": _delete,
    "a row duplicated": _duplicate_a_row,
}


@pytest.mark.parametrize("kind", ["scored", "rejected"])
@pytest.mark.parametrize("tamper", list(TAMPERS))
def test_a_tampered_chunk_is_detected_and_recomputed(
    tmp_path: Path, tamper: str, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    _finished_store(tmp_path)
    TAMPERS[tamper](_path(tmp_path, 1, kind))
    calls = tmp_path / "calls.txt"
    with caplog.at_level(logging.WARNING, logger="screening.store"):
        reused, store = _resume(tmp_path, calls)
    assert reused == {0, 2, 3}
    assert recorded_calls(calls) == [(10, 20)]  # only the damaged chunk is computed again
    assert "chunk 1" in caplog.text and "computing it again" in caplog.text
    assert store.discarded.keys() == {1}
    assert _all_ids(store) == list(range(N))  # nothing lost, nothing twice
    # and the recomputed chunk is recorded: the next rerun reuses everything
    assert ChunkStore(tmp_path).open(MANIFEST, resume=True) == {0, 1, 2, 3}


def test_a_stray_chunk_beyond_the_plan_is_removed_not_counted_twice(tmp_path: Path) -> None:
    _finished_store(tmp_path)
    for kind in ("scored", "rejected"):  # a copy of chunk 0 under index 7 (the plan has 4 chunks)
        shutil.copy(_path(tmp_path, 0, kind), _path(tmp_path, 7, kind))
    reused, store = _resume(tmp_path, tmp_path / "calls.txt")
    assert reused == {0, 1, 2, 3}
    assert not _path(tmp_path, 7, "scored").exists()
    assert _all_ids(store) == list(range(N))
    assert store.count_rows("scored") + store.count_rows("rejected") == N


def test_a_stray_record_beyond_the_plan_is_dropped(tmp_path: Path) -> None:
    _finished_store(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["chunks"]["7"] = manifest["chunks"]["0"]
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    for kind in ("scored", "rejected"):
        shutil.copy(_path(tmp_path, 0, kind), _path(tmp_path, 7, kind))
    reused, store = _resume(tmp_path, tmp_path / "calls.txt")
    assert reused == {0, 1, 2, 3}
    assert store.discarded == {7: "beyond the chunk plan"}
    assert _all_ids(store) == list(range(N))


def test_chunk_files_without_a_record_are_recomputed(tmp_path: Path) -> None:
    """Killed after writing a chunk's files but before recording it: the files are not trusted."""
    store = _finished_store(tmp_path)
    manifest = json.loads(store.manifest_path.read_text())
    del manifest["chunks"]["2"]
    store.manifest_path.write_text(json.dumps(manifest))
    calls = tmp_path / "calls.txt"
    reused, store = _resume(tmp_path, calls)
    assert reused == {0, 1, 3}
    assert recorded_calls(calls) == [(20, 30)]
    assert _all_ids(store) == list(range(N))


def test_a_record_that_does_not_match_its_file_is_recomputed(tmp_path: Path) -> None:
    store = _finished_store(tmp_path)
    manifest = json.loads(store.manifest_path.read_text())
    manifest["chunks"]["3"]["files"]["scored"]["rows"] -= 1
    manifest["chunks"]["3"]["files"]["rejected"]["rows"] += 1  # same total, wrong split
    store.manifest_path.write_text(json.dumps(manifest))
    reused, store = _resume(tmp_path, tmp_path / "calls.txt")
    assert reused == {0, 1, 2}
    assert "rows" in store.discarded[3]
    assert _all_ids(store) == list(range(N))


@pytest.mark.parametrize(
    "damage",
    [
        b"",
        b"{not json",
        b"\xff\xfe\x00garbage",
        b"[1, 2, 3]",
        b'{"format": 1, "spec_hash": "c", "model_versions": {}, "chunk_size": 10, "n_candidates": 35}',
        b'{"format": 2, "spec_hash": "c"}',
        b'{"format": 2, "spec_hash": "c", "model_versions": {}, "chunk_size": "10", "n_candidates": 35}',
    ],
    ids=["empty", "bad json", "binary", "a list", "old format", "fields missing", "wrong type"],
)
def test_an_unreadable_manifest_recomputes_everything_without_a_traceback(
    tmp_path: Path, damage: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    store = _finished_store(tmp_path)
    store.manifest_path.write_bytes(damage)
    calls = tmp_path / "calls.txt"
    with caplog.at_level(logging.WARNING, logger="screening.store"):
        reused, store = _resume(tmp_path, calls)
    assert reused == set()
    assert "manifest.json" in caplog.text and "cannot be trusted" in caplog.text
    assert recorded_calls(calls) == [(c.start, c.stop) for c in CHUNKS]
    assert _all_ids(store) == list(range(N))
    assert ChunkStore(tmp_path).open(MANIFEST, resume=True) == {0, 1, 2, 3}


def test_leftover_temporary_files_are_swept(tmp_path: Path) -> None:
    _finished_store(tmp_path)
    leftover = tmp_path / "chunks" / ".chunk-000001.scored.parquet.abc123.tmp"
    leftover.write_bytes(b"half a file")
    reused, _ = _resume(tmp_path, tmp_path / "calls.txt")
    assert reused == {0, 1, 2, 3}
    assert not leftover.exists()


def test_a_result_missing_a_candidate_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    store = ChunkStore(tmp_path)
    store.open(MANIFEST, resume=True)
    full = arithmetic_chunk(0, 10)
    short = ChunkResult(scored=full.scored.iloc[1:], rejected=full.rejected)
    with pytest.raises(ChunkIntegrityError, match=r"chunk 0 \[0, 10\): the scorer returned 9 rows"):
        store.write_chunk(ChunkRange(0, 0, 10), short)
    doubled = ChunkResult(scored=full.scored, rejected=full.scored[["candidate_id", "formula"]].head(1))
    with pytest.raises(ChunkIntegrityError):
        store.write_chunk(ChunkRange(0, 0, 10), doubled)
    assert store.completed() == set()
    assert not list(store.chunk_dir.iterdir())


def test_write_before_open_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="before open"):
        ChunkStore(tmp_path).write_chunk(ChunkRange(0, 0, 10), arithmetic_chunk(0, 10))


def test_a_reader_of_a_running_screen_sees_only_recorded_chunks(tmp_path: Path) -> None:
    writer = ChunkStore(tmp_path)
    writer.open(MANIFEST, resume=True)
    writer.write_chunk(CHUNKS[0], arithmetic_chunk(0, 10))
    for kind in ("scored", "rejected"):  # files of a chunk being written, not yet recorded
        shutil.copy(_path(tmp_path, 0, kind), _path(tmp_path, 1, kind))
    reader = ChunkStore(tmp_path)
    assert reader.completed() == {0}
    assert sorted(
        reader.read("scored")["candidate_id"].tolist() + reader.read("rejected")["candidate_id"].tolist()
    ) == list(range(10))


# ------------------------------------------------------------------------------------- property test
@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    damage=st.dictionaries(
        keys=st.tuples(st.integers(0, len(CHUNKS) - 1), st.sampled_from(["scored", "rejected"])),
        values=st.sampled_from(sorted(TAMPERS)),
        max_size=5,
    ),
    stray=st.booleans(),
)
def test_any_damage_is_recomputed_and_every_candidate_comes_back_once(
    tmp_path_factory: pytest.TempPathFactory, damage: dict[tuple[int, str], str], stray: bool
) -> None:
    root = tmp_path_factory.mktemp("tamper")
    _finished_store(root)
    if stray:  # a copy of chunk 0 beyond the plan
        shutil.copy(_path(root, 0, "scored"), _path(root, 5, "scored"))
    for (index, kind), tamper in damage.items():
        TAMPERS[tamper](_path(root, index, kind))
    calls = root / "calls.txt"
    reused, store = _resume(root, calls)
    damaged = {index for index, _ in damage}
    assert reused == {c.index for c in CHUNKS} - damaged
    assert sorted(recorded_calls(calls)) == sorted((c.start, c.stop) for c in CHUNKS if c.index in damaged)
    assert _all_ids(store) == list(range(N))
