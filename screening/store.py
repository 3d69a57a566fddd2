"""On-disk chunk store of a screen: one Parquet pair per finished chunk plus a manifest, so an interrupted
screen resumes without recomputing the chunks it already finished, and never trusts a file it cannot verify.

Layout of a screen's output directory::

    manifest.json                     what the chunks were computed from (spec hash, model versions, plan)
                                      and, per finished chunk, its range and each file's rows, size, SHA-256
    chunks/chunk-000007.rejected.parquet
    chunks/chunk-000007.scored.parquet

A chunk counts as finished only once its record is in the manifest, written after both of its files. On
resume every recorded chunk is checked against the plan and its files (size, SHA-256, Parquet row count);
a chunk that fails (a row dropped, emptied, truncated, corrupt, missing), a chunk beyond the plan, a file
without a record and an unreadable manifest are logged, deleted and computed again: nothing is lost or
counted twice, and no rerun fails on a damaged file.

Every file is written to a temporary name in the same directory and renamed into place (atomic on POSIX),
so a crash never leaves a half-written file under a final name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from screening.chunks import ChunkRange, ChunkResult, plan_chunks

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
CHUNK_DIR = "chunks"
MANIFEST_FORMAT = 2  # 2: per-chunk records (rows, bytes, SHA-256 of each file); 1 had none
KINDS = ("rejected", "scored")  # write order
_CHUNK_RE = re.compile(r"^chunk-(\d{6,})\.(scored|rejected)\.parquet$")
_HASH_BLOCK = 1 << 20


class ManifestMismatchError(ValueError):
    """The output directory holds chunks computed from a different spec, model version or chunk plan."""


class ManifestUnreadableError(ValueError):
    """The manifest exists but cannot be read (corrupt, truncated, written by another format)."""


class ChunkIntegrityError(ValueError):
    """A chunk result does not account for each candidate of its range exactly once."""


def _canonical(value: Any) -> Any:
    """A JSON-able, order-independent view of a spec value (dataclasses, enums, tuples, sets, mappings)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "model_dump"):  # pydantic models
        return _canonical(value.model_dump())
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, set | frozenset):
        return sorted((_canonical(v) for v in value), key=repr)
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, str | int | bool) or value is None:
        return value
    if isinstance(value, float):
        return repr(value)  # exact round trip, no JSON float formatting drift
    if hasattr(value, "value") and isinstance(value.value, str | int):  # enums
        return value.value
    return repr(value)


def spec_fingerprint(spec: object) -> str:
    """SHA-256 of a canonical JSON rendering of the spec: equal specs give equal fingerprints."""
    text = json.dumps(_canonical(spec), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Manifest:
    """What a screen's chunks were computed from. Two runs may share chunks only if these agree."""

    spec_hash: str
    model_versions: dict[str, str]
    chunk_size: int
    n_candidates: int
    spec_name: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def differences(self, other: Manifest) -> list[str]:
        """Human-readable list of what differs from ``other`` in the fields that decide reuse."""
        diffs = []
        if self.spec_hash != other.spec_hash:
            diffs.append(f"spec changed (hash {other.spec_hash[:12]} on disk, {self.spec_hash[:12]} now)")
        for target in sorted(set(self.model_versions) | set(other.model_versions)):
            old, new = other.model_versions.get(target), self.model_versions.get(target)
            if old != new:
                diffs.append(f"model version of {target} changed ({old} on disk, {new} now)")
        if self.chunk_size != other.chunk_size:
            diffs.append(f"chunk size changed ({other.chunk_size} on disk, {self.chunk_size} now)")
        if self.n_candidates != other.n_candidates:
            diffs.append(f"candidate count changed ({other.n_candidates} on disk, {self.n_candidates} now)")
        return diffs

    def to_json(self) -> str:
        return json.dumps({"format": MANIFEST_FORMAT, **dataclasses.asdict(self)}, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        return _parse_manifest(text)[0]


@dataclass(frozen=True)
class FileRecord:
    """One chunk file as written: its Parquet row count, size in bytes and SHA-256."""

    rows: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class ChunkRecord:
    """A finished chunk: its candidate range and its files (``rejected``, ``scored``)."""

    start: int
    stop: int
    files: dict[str, FileRecord]

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "stop": self.stop,
            "files": {k: dataclasses.asdict(v) for k, v in self.files.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChunkRecord:
        files = {
            str(k): FileRecord(int(v["rows"]), int(v["bytes"]), str(v["sha256"]))
            for k, v in data["files"].items()
        }
        return cls(start=int(data["start"]), stop=int(data["stop"]), files=files)


def _parse_manifest(text: str) -> tuple[Manifest, dict[int, ChunkRecord]]:
    """The plan and the chunk records of a manifest file; ManifestUnreadableError naming what is wrong."""
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        version = data.pop("format", None)
        if version != MANIFEST_FORMAT:
            raise ValueError(f"format {version!r}, this nascreen reads format {MANIFEST_FORMAT}")
        raw_chunks = data.pop("chunks", {})
        manifest = Manifest(**data)
        if not (isinstance(manifest.chunk_size, int) and isinstance(manifest.n_candidates, int)):
            raise ValueError("chunk_size and n_candidates must be integers")
        records = {int(i): ChunkRecord.from_dict(r) for i, r in raw_chunks.items()}
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ManifestUnreadableError(f"{type(exc).__name__}: {exc}") from None
    return manifest, records


def _manifest_json(manifest: Manifest, records: Mapping[int, ChunkRecord]) -> str:
    data: dict[str, Any] = {"format": MANIFEST_FORMAT, **dataclasses.asdict(manifest)}
    data["chunks"] = {str(i): records[i].to_dict() for i in sorted(records)}
    return json.dumps(data, indent=1, sort_keys=True)


def _file_digest(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while block := fh.read(_HASH_BLOCK):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def _check_covers(chunk: ChunkRange, result: ChunkResult) -> None:
    """Raise ChunkIntegrityError unless scored + rejected hold each candidate id of ``chunk`` exactly once."""
    frames = dict(zip(KINDS, (result.rejected, result.scored), strict=True))
    no_ids = [kind for kind, f in frames.items() if len(f) and "candidate_id" not in f.columns]
    if no_ids:
        raise ChunkIntegrityError(
            f"chunk {chunk.index}: the {' and '.join(no_ids)} rows have no candidate_id"
        )
    ids = [f["candidate_id"].to_numpy() for f in frames.values() if len(f)]
    got = np.sort(np.concatenate(ids)) if ids else np.array([], dtype=np.int64)
    if len(got) != chunk.size or not np.array_equal(got, np.arange(chunk.start, chunk.stop)):
        raise ChunkIntegrityError(
            f"chunk {chunk.index} [{chunk.start}, {chunk.stop}): the scorer returned {len(got)} rows "
            f"for {chunk.size} candidates, or ids outside the range or repeated"
        )


def _atomic_write(path: Path, write: Any) -> None:
    """Call ``write(tmp_path)`` then rename the temporary file onto ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except Exception:
        Path(tmp).unlink(missing_ok=True)
        raise


class ChunkStore:
    """Chunk files + manifest under one output directory (see the module docstring for the layout)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.chunk_dir = self.root / CHUNK_DIR
        self._manifest: Manifest | None = None  # set by open(): this instance writes the screen
        self._records: dict[int, ChunkRecord] = {}
        self.discarded: dict[int, str] = {}  # chunk index -> why open() threw its files away

    # -- manifest / resume -------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST_NAME

    def read_manifest(self) -> Manifest | None:
        """The manifest on disk (None if there is none); ManifestUnreadableError if it cannot be read."""
        loaded = self._load()
        return loaded[0] if loaded is not None else None

    def _load(self) -> tuple[Manifest, dict[int, ChunkRecord]] | None:
        try:
            text = self.manifest_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise ManifestUnreadableError(f"{self.manifest_path}: {exc}") from None
        try:
            return _parse_manifest(text)
        except ManifestUnreadableError as exc:
            raise ManifestUnreadableError(f"{self.manifest_path}: {exc}") from None

    def open(self, manifest: Manifest, *, resume: bool) -> set[int]:
        """Prepare the directory for ``manifest`` and return the indices of chunks that can be reused.

        ``resume=True``: finished chunks of a run with the same manifest are kept once verified (see the
        module docstring; those that fail are deleted, recorded in ``discarded`` and not returned, so they
        are computed again); chunks from a different spec, model version or chunk plan raise
        ManifestMismatchError (nothing is deleted). An unreadable manifest is logged and replaced, and
        every chunk is computed again (nothing says what its chunks were computed from).
        ``resume=False``: any previous chunks are deleted and the screen starts fresh.
        """
        records: dict[int, ChunkRecord] = {}
        if resume:
            try:
                loaded = self._load()
            except ManifestUnreadableError as exc:
                logger.warning("%s; its chunks cannot be trusted, computing them again", exc)
                loaded = None
            if loaded is not None:
                previous, records = loaded
                diffs = manifest.differences(previous)
                if diffs:
                    raise ManifestMismatchError(
                        f"{self.root}: existing results were computed differently: {'; '.join(diffs)}. "
                        "Use --no-resume to discard them and start fresh, or choose another output directory."
                    )
        elif self.chunk_dir.exists():
            logger.info("discarding previous chunks in %s (no resume)", self.chunk_dir)
            shutil.rmtree(self.chunk_dir)
        self.chunk_dir.mkdir(parents=True, exist_ok=True)
        plan = {c.index: c for c in plan_chunks(manifest.n_candidates, manifest.chunk_size)}
        self.discarded = {}
        verified: dict[int, ChunkRecord] = {}
        for index, record in records.items():
            problem = self._verify(plan.get(index), index, record)
            if problem is None:
                verified[index] = record
            else:
                self.discarded[index] = problem
        self._sweep(set(verified))
        for index, problem in sorted(self.discarded.items()):
            logger.warning(
                "chunk %d in %s failed its check (%s): computing it again", index, self.root, problem
            )
        self._manifest, self._records = manifest, verified
        self._write_manifest()
        if verified:
            logger.info(
                "resuming: %d of %d chunks already finished in %s", len(verified), len(plan), self.root
            )
        return set(verified)

    def _verify(self, planned: ChunkRange | None, index: int, record: ChunkRecord) -> str | None:
        """Why recorded chunk ``index`` cannot be reused, or None when it matches the plan and its files."""
        if planned is None:
            return "beyond the chunk plan"
        if (record.start, record.stop) != (planned.start, planned.stop):
            return (
                f"recorded range [{record.start}, {record.stop}) is not the plan's "
                f"[{planned.start}, {planned.stop})"
            )
        if set(record.files) != set(KINDS):
            return f"record lists files {sorted(record.files)}"
        total = sum(f.rows for f in record.files.values())
        if total != planned.size:
            return f"record counts {total} rows for {planned.size} candidates"
        for kind, expected in record.files.items():
            path = self._path(index, kind)
            try:
                size = path.stat().st_size
                if size != expected.bytes:
                    return f"{path.name} has {size} bytes, {expected.bytes} were written"
                _, digest = _file_digest(path)
                if digest != expected.sha256:
                    return f"{path.name} changed since it was written (SHA-256 differs)"
                rows = pq.ParquetFile(path).metadata.num_rows
            except FileNotFoundError:
                return f"{path.name} is missing"
            except (OSError, pa.ArrowException) as exc:
                return f"{path.name} cannot be read: {exc}"
            if rows != expected.rows:
                return f"{path.name} holds {rows} rows, {expected.rows} were written"
        return None

    def _sweep(self, keep: set[int]) -> None:
        """Delete every entry of the chunk directory that is not a file of a chunk in ``keep``: files of
        failed, stray or unrecorded chunks and temporary files left by a crash."""
        for entry in self.chunk_dir.iterdir():
            m = _CHUNK_RE.match(entry.name)
            if m and int(m.group(1)) in keep and entry.is_file():
                continue
            if m and int(m.group(1)) not in self.discarded:
                self.discarded[int(m.group(1))] = f"{entry.name} has no record in the manifest"
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    def _write_manifest(self) -> None:
        assert self._manifest is not None
        text = _manifest_json(self._manifest, self._records)
        _atomic_write(self.manifest_path, lambda p: p.write_text(text, encoding="utf-8"))

    # -- chunks ------------------------------------------------------------------------------------
    def _path(self, index: int, kind: str) -> Path:
        return self.chunk_dir / f"chunk-{index:06d}.{kind}.parquet"

    def _current_records(self) -> dict[int, ChunkRecord]:
        if self._manifest is not None:
            return self._records
        loaded = self._load()  # a reader of a screen another instance writes (e.g. top-k while it runs)
        return loaded[1] if loaded is not None else {}

    def completed(self) -> set[int]:
        """Indices of finished chunks: recorded in the manifest, with both files present."""
        return {i for i in self._current_records() if all(self._path(i, kind).is_file() for kind in KINDS)}

    def write_chunk(self, chunk: ChunkRange, result: ChunkResult) -> None:
        """Persist one chunk: both files, then its record (rows, bytes, SHA-256 of each) in the manifest,
        which is what marks it finished. Raises ChunkIntegrityError (writing nothing) if the result does not
        hold each candidate of the chunk exactly once."""
        if self._manifest is None:
            raise RuntimeError("ChunkStore.write_chunk before open(): the manifest is not written yet")
        _check_covers(chunk, result)
        files: dict[str, FileRecord] = {}
        for kind, frame in (("rejected", result.rejected), ("scored", result.scored)):
            table = pa.Table.from_pandas(frame, preserve_index=False)

            def write(p: Path, t: pa.Table = table, k: str = kind) -> None:
                pq.write_table(t, p)
                size, digest = _file_digest(p)
                files[k] = FileRecord(rows=t.num_rows, bytes=size, sha256=digest)

            _atomic_write(self._path(chunk.index, kind), write)
        self._records[chunk.index] = ChunkRecord(start=chunk.start, stop=chunk.stop, files=files)
        self._write_manifest()

    def _files(self, kind: str, indices: Iterable[int] | None = None) -> list[Path]:
        chosen = sorted(self.completed() if indices is None else indices)
        return [self._path(i, kind) for i in chosen]

    def iter_frames(self, kind: str, columns: Sequence[str] | None = None) -> Iterator[pd.DataFrame]:
        """Finished chunks of ``kind`` ("scored" or "rejected") in chunk order, reading only ``columns``
        (those present in each file) so the driver never holds columns it does not need."""
        for path in self._files(kind):
            names = pq.read_schema(path).names
            wanted = names if columns is None else [c for c in columns if c in names]
            yield pq.read_table(path, columns=wanted).to_pandas()

    def read(self, kind: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """All finished chunks of ``kind`` concatenated in candidate order."""
        frames = [f for f in self.iter_frames(kind, columns) if len(f.columns)]
        nonempty = [f for f in frames if len(f)]
        if not nonempty:
            return frames[0].iloc[0:0] if frames else pd.DataFrame(columns=list(columns or []))
        return pd.concat(nonempty, ignore_index=True)

    def count_rows(self, kind: str) -> int:
        """Row count over finished chunks from Parquet metadata only (no data read)."""
        return sum(pq.ParquetFile(p).metadata.num_rows for p in self._files(kind))

    def value_counts(self, kind: str, column: str) -> Counter[str]:
        """Counts of the values of one column over finished chunks, reading that column only."""
        counts: Counter[str] = Counter()
        for frame in self.iter_frames(kind, [column]):
            if column in frame.columns:
                counts.update(frame[column].astype(str).tolist())
        return counts

    def export(self, kind: str, parquet_path: Path, csv_path: Path | None = None) -> int:
        """Stream the finished chunks of ``kind`` into one Parquet (and CSV) file, a chunk at a time, so a
        large rejected table is never held in memory whole. Returns the number of rows written."""
        parquet_path.parent.mkdir(parents=True, exist_ok=True)
        files = [p for p in self._files(kind) if pq.ParquetFile(p).metadata.num_rows > 0]
        schema = (
            pa.unify_schemas([pq.read_schema(p) for p in files], promote_options="permissive")
            if files
            else pa.schema([])
        )
        n = 0

        def write_parquet(tmp: Path) -> None:
            nonlocal n
            with pq.ParquetWriter(tmp, schema) as writer:
                for p in files:
                    table = pq.read_table(p).select(schema.names).cast(schema)
                    writer.write_table(table)
                    n += table.num_rows

        def write_csv(tmp: Path) -> None:
            with pa_csv.CSVWriter(tmp, schema) as writer:
                for p in files:
                    writer.write_table(pq.read_table(p).select(schema.names).cast(schema))

        _atomic_write(parquet_path, write_parquet)
        if csv_path is not None:
            _atomic_write(csv_path, write_csv)
        return n


def write_table(frame: pd.DataFrame, parquet_path: Path, csv_path: Path | None = None) -> None:
    """Write a (merged, ranked) table as Parquet and optionally CSV, each atomically."""
    parquet_path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(parquet_path, lambda p: frame.to_parquet(p, index=False))
    if csv_path is not None:
        _atomic_write(csv_path, lambda p: frame.to_csv(p, index=False))
