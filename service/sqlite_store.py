"""One SQLite connection for a durable store of the service (the API's job store, the campaign store):
opened in WAL mode with the store's schema, guarded by a lock so threads share it, and one way to run a
write transaction (BEGIN IMMEDIATE ... COMMIT, rolled back on any exception)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["SqliteStore"]


class SqliteStore:
    """Base of a thread-safe SQLite store: ``schema`` (a SQL script of CREATE ... IF NOT EXISTS) is applied
    on open; subclasses write in ``_tx()`` and read with ``_read``."""

    def __init__(self, path: Path, schema: str, *, busy_timeout_s: float = 30.0) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            str(path), check_same_thread=False, isolation_level=None, timeout=busy_timeout_s
        )
        self._conn.row_factory = sqlite3.Row
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.executescript(schema)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._conn.execute(sql, tuple(args)).fetchall())
