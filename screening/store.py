"""On-disk chunk store of a screen: one Parquet pair per finished chunk plus a manifest, so an interrupted
screen resumes without recomputing the chunks it already finished.

Layout of a screen's output directory::

    manifest.json                     what the chunks were computed from (spec hash, model versions, plan)
    chunks/chunk-000007.rejected.parquet
    chunks/chunk-000007.scored.parquet    written last: its presence marks chunk 7 as finished

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

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from screening.chunks import ChunkRange, ChunkResult

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
CHUNK_DIR = "chunks"
MANIFEST_FORMAT = 1
_CHUNK_RE = re.compile(r"^chunk-(\d{6,})\.scored\.parquet$")


class ManifestMismatchError(ValueError):
    """The output directory holds chunks computed from a different spec, model version or chunk plan."""


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
        data = json.loads(text)
        if data.pop("format", None) != MANIFEST_FORMAT:
            raise ValueError(f"unsupported manifest format (expected {MANIFEST_FORMAT})")
        return cls(**data)


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

    # -- manifest / resume -------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST_NAME

    def read_manifest(self) -> Manifest | None:
        if not self.manifest_path.exists():
            return None
        return Manifest.from_json(self.manifest_path.read_text())

    def open(self, manifest: Manifest, *, resume: bool) -> set[int]:
        """Prepare the directory for ``manifest`` and return the indices of chunks that can be reused.

        ``resume=True``: finished chunks of a run with the same manifest are kept; chunks from a different
        spec, model version or chunk plan raise ManifestMismatchError (nothing is deleted).
        ``resume=False``: any previous chunks are deleted and the screen starts fresh.
        """
        previous = self.read_manifest()
        if previous is not None and resume:
            diffs = manifest.differences(previous)
            if diffs:
                raise ManifestMismatchError(
                    f"{self.root}: existing results were computed differently: {'; '.join(diffs)}. "
                    "Use --no-resume to discard them and start fresh, or choose another output directory."
                )
        if not resume and self.chunk_dir.exists():
            logger.info("discarding previous chunks in %s (no resume)", self.chunk_dir)
            shutil.rmtree(self.chunk_dir)
        self.chunk_dir.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.manifest_path, lambda p: p.write_text(manifest.to_json()))
        n_chunks = -(-manifest.n_candidates // manifest.chunk_size)
        done = {i for i in self.completed() if i < n_chunks}
        if done:
            logger.info("resuming: %d of %d chunks already finished in %s", len(done), n_chunks, self.root)
        return done

    # -- chunks ------------------------------------------------------------------------------------
    def _path(self, index: int, kind: str) -> Path:
        return self.chunk_dir / f"chunk-{index:06d}.{kind}.parquet"

    def completed(self) -> set[int]:
        """Indices of finished chunks (those whose scored file, written last, exists)."""
        if not self.chunk_dir.exists():
            return set()
        return {int(m.group(1)) for p in self.chunk_dir.iterdir() if (m := _CHUNK_RE.match(p.name))}

    def write_chunk(self, chunk: ChunkRange, result: ChunkResult) -> None:
        """Persist one chunk: rejected rows first, scored rows last (the scored file marks completion)."""
        for kind, frame in (("rejected", result.rejected), ("scored", result.scored)):
            table = pa.Table.from_pandas(frame, preserve_index=False)
            _atomic_write(self._path(chunk.index, kind), lambda p, t=table: pq.write_table(t, p))

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
