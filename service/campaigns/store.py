"""The durable campaign store: stdlib sqlite3, one file next to the API's job store (``mlruns/``).

What is kept, so that every round can be reproduced and audited:

* a campaign: name, the screening spec (the mapping, the text it was read from and the SHA-256 of that
  text), the objectives, the acquisition configuration, the seed and the host (reference) formula;
* its rounds: per round the seed it used, the fingerprint of the parsed spec it scored, the model version
  of every target (champion or the campaign's own refit), k and the proposals with their reasons;
* the measured results: every uploaded row in upload order, with its validation outcome (accepted, or
  the reason it was refused), the values per target and what the models predicted for it beforehand;
* the campaign's refits: target, registered version, MLflow run, rows used.

The schema is versioned (``meta.schema_version``); a file written by a newer schema is refused with a
message rather than read wrongly. Campaign ids are server-generated UUID4 strings; names are checked
against ``NAME_PATTERN`` (they end up in the MLflow alias ``campaign-<name>``). Nothing a client sends is
ever used to build a path. Several server processes may share the file (WAL journal, ``BEGIN
IMMEDIATE`` transactions); a round being computed is a row in state ``running``, so a second proposal
for the same campaign at the same time is refused (``RoundInProgressError``) instead of numbered twice.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.sqlite_store import SqliteStore

__all__ = [
    "NAME_PATTERN",
    "SCHEMA_VERSION",
    "CampaignExistsError",
    "CampaignRecord",
    "CampaignStore",
    "RefitRecord",
    "ResultRecord",
    "RoundInProgressError",
    "RoundRecord",
    "StoreVersionError",
    "UnknownCampaignError",
    "check_name",
]

SCHEMA_VERSION = 1
#: Lower-case letters, digits, '-' and '_', starting with a letter or digit: safe in an MLflow alias
#: (``campaign-<name>``), a file name and a URL.
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,59}")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS campaigns (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    spec_json TEXT NOT NULL,
    spec_text TEXT NOT NULL,
    spec_sha256 TEXT NOT NULL,
    objectives_json TEXT NOT NULL,
    acquisition_json TEXT NOT NULL,
    seed INTEGER NOT NULL,
    reference TEXT
);
CREATE TABLE IF NOT EXISTS rounds (
    campaign_id TEXT NOT NULL REFERENCES campaigns(id),
    number INTEGER NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    finished_at REAL,
    seed INTEGER NOT NULL,
    k INTEGER NOT NULL,
    spec_hash TEXT NOT NULL DEFAULT '',
    model_versions_json TEXT NOT NULL DEFAULT '{}',
    proposals_json TEXT NOT NULL DEFAULT '[]',
    counts_json TEXT NOT NULL DEFAULT '{}',
    n_measured INTEGER NOT NULL DEFAULT 0,
    mlflow_run_id TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (campaign_id, number)
);
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign_id TEXT NOT NULL REFERENCES campaigns(id),
    batch INTEGER NOT NULL,
    row INTEGER NOT NULL,
    created_at REAL NOT NULL,
    formula TEXT NOT NULL,
    conditions_json TEXT NOT NULL,
    values_json TEXT NOT NULL,
    accepted INTEGER NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    round INTEGER,
    predicted_json TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS results_campaign ON results (campaign_id, id);
CREATE TABLE IF NOT EXISTS refits (
    campaign_id TEXT NOT NULL REFERENCES campaigns(id),
    target TEXT NOT NULL,
    version TEXT NOT NULL,
    run_id TEXT NOT NULL,
    n_rows INTEGER NOT NULL,
    created_at REAL NOT NULL,
    metrics_json TEXT NOT NULL DEFAULT '{}'
);
"""


class UnknownCampaignError(KeyError):
    """No campaign with this id or name."""


class CampaignExistsError(ValueError):
    """A campaign with this name already exists."""


class RoundInProgressError(RuntimeError):
    """A proposal for this campaign is being computed (by this or another process)."""


class StoreVersionError(RuntimeError):
    """The store file was written by another schema version."""


def check_name(name: object) -> str:
    """The campaign name, or ValueError saying what a name may hold."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"campaign name {name!r}: use 1-60 lower-case letters, digits, '-' or '_', starting with a "
            "letter or digit (it becomes the MLflow alias campaign-<name>)"
        )
    return name


def is_campaign_id(text: str) -> bool:
    """True only for the canonical lower-case UUID4 strings this store generates."""
    try:
        parsed = uuid.UUID(text)
    except ValueError:
        return False
    return str(parsed) == text and parsed.version == 4


@dataclass(frozen=True)
class CampaignRecord:
    """A campaign as stored (objectives and acquisition as plain mappings; the core types parse them)."""

    id: str
    name: str
    created_at: float
    spec: dict[str, Any]
    spec_text: str
    spec_sha256: str
    objectives: list[dict[str, Any]]
    acquisition: dict[str, Any]
    seed: int
    reference: str | None


@dataclass(frozen=True)
class RoundRecord:
    """One proposal round: what it scored with (seed, spec fingerprint, model versions) and proposed."""

    campaign_id: str
    number: int
    status: str  # running | done
    created_at: float
    finished_at: float | None
    seed: int
    k: int
    spec_hash: str
    model_versions: dict[str, str]
    proposals: list[dict[str, Any]]
    counts: dict[str, Any]
    n_measured: int  # accepted measured rows the round was proposed from
    mlflow_run_id: str = ""  # the round's run in the MLflow experiment nascreen-campaigns


@dataclass(frozen=True)
class ResultRecord:
    """One uploaded measured row: its place in the upload, its values and its validation outcome."""

    id: int
    campaign_id: str
    batch: int
    row: int  # 1-based row of the uploaded table
    created_at: float
    formula: str
    conditions: dict[str, Any]
    values: dict[str, float]
    accepted: bool
    error: str
    round: int | None  # the round that proposed this composition, when one did
    predicted: dict[str, dict[str, Any]] = field(default_factory=dict)  # target -> prediction beforehand


@dataclass(frozen=True)
class RefitRecord:
    """A campaign model: the registered version (alias campaign-<name>) fitted with the campaign's rows."""

    campaign_id: str
    target: str
    version: str
    run_id: str
    n_rows: int
    created_at: float
    metrics: dict[str, float]


@dataclass(frozen=True)
class NewResult:
    """A row to store (``CampaignStore.add_results``)."""

    row: int
    formula: str
    conditions: Mapping[str, Any]
    values: Mapping[str, float]
    accepted: bool
    error: str = ""
    round: int | None = None
    predicted: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


class CampaignStore(SqliteStore):
    """Thread-safe access to the campaign tables (one connection guarded by a lock; WAL journal)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, _SCHEMA)
        with self._lock:
            self._check_version()

    def _check_version(self) -> None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            self._conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
            return
        if int(row["value"]) != SCHEMA_VERSION:
            raise StoreVersionError(
                f"{self.path}: campaign store schema version {row['value']}, this nascreen reads version "
                f"{SCHEMA_VERSION}"
            )

    # -- campaigns ---------------------------------------------------------------------------------
    def create(
        self,
        *,
        name: str,
        spec: Mapping[str, Any],
        spec_text: str,
        spec_sha256: str,
        objectives: Sequence[Mapping[str, Any]],
        acquisition: Mapping[str, Any],
        seed: int,
        reference: str | None,
    ) -> CampaignRecord:
        """A new campaign (``CampaignExistsError`` when the name is taken)."""
        check_name(name)
        campaign_id = str(uuid.uuid4())
        try:
            with self._tx() as c:
                c.execute(
                    "INSERT INTO campaigns (id, name, created_at, spec_json, spec_text, spec_sha256, "
                    "objectives_json, acquisition_json, seed, reference) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        campaign_id,
                        name,
                        time.time(),
                        json.dumps(dict(spec)),
                        spec_text,
                        spec_sha256,
                        json.dumps([dict(o) for o in objectives]),
                        json.dumps(dict(acquisition)),
                        int(seed),
                        reference,
                    ),
                )
        except sqlite3.IntegrityError:
            raise CampaignExistsError(f"a campaign named {name!r} already exists") from None
        return self.get(campaign_id)

    def get(self, ref: str) -> CampaignRecord:
        """By id or by name; ``UnknownCampaignError`` otherwise."""
        column = "id" if is_campaign_id(ref) else "name"
        rows = self._read(f"SELECT * FROM campaigns WHERE {column} = ?", (ref,))
        if not rows:
            raise UnknownCampaignError(ref)
        return _campaign(rows[0])

    def recent(self, limit: int = 100) -> list[CampaignRecord]:
        """The most recent campaigns first."""
        rows = self._read("SELECT * FROM campaigns ORDER BY created_at DESC LIMIT ?", (limit,))
        return [_campaign(r) for r in rows]

    # -- rounds ------------------------------------------------------------------------------------
    def begin_round(self, campaign_id: str, *, k: int, seed_of: Any) -> RoundRecord:
        """Reserve the next round number (state ``running``); ``seed_of(number)`` gives its seed.
        ``RoundInProgressError`` when a round of this campaign is already being computed."""
        with self._tx() as c:
            busy = c.execute(
                "SELECT number FROM rounds WHERE campaign_id = ? AND status = 'running'", (campaign_id,)
            ).fetchone()
            if busy is not None:
                raise RoundInProgressError(
                    f"round {busy['number']} of this campaign is being proposed; wait for it to finish"
                )
            last = c.execute(
                "SELECT COALESCE(MAX(number), 0) AS n FROM rounds WHERE campaign_id = ?", (campaign_id,)
            ).fetchone()
            number = int(last["n"]) + 1
            c.execute(
                "INSERT INTO rounds (campaign_id, number, status, created_at, seed, k) "
                "VALUES (?, ?, 'running', ?, ?, ?)",
                (campaign_id, number, time.time(), int(seed_of(number)), int(k)),
            )
        return self.round(campaign_id, number)

    def finish_round(
        self,
        campaign_id: str,
        number: int,
        *,
        spec_hash: str,
        model_versions: Mapping[str, str],
        proposals: Sequence[Mapping[str, Any]],
        counts: Mapping[str, Any],
        n_measured: int,
        mlflow_run_id: str = "",
    ) -> RoundRecord:
        """Record a computed round (state ``done``)."""
        with self._tx() as c:
            c.execute(
                "UPDATE rounds SET status = 'done', finished_at = ?, spec_hash = ?, model_versions_json = ?, "
                "proposals_json = ?, counts_json = ?, n_measured = ?, mlflow_run_id = ? "
                "WHERE campaign_id = ? AND number = ?",
                (
                    time.time(),
                    spec_hash,
                    json.dumps(dict(model_versions)),
                    json.dumps([dict(p) for p in proposals]),
                    json.dumps(dict(counts)),
                    int(n_measured),
                    mlflow_run_id,
                    campaign_id,
                    number,
                ),
            )
        return self.round(campaign_id, number)

    def abandon_round(self, campaign_id: str, number: int) -> None:
        """Forget a round whose proposal failed (its number is given to the next attempt)."""
        with self._tx() as c:
            c.execute(
                "DELETE FROM rounds WHERE campaign_id = ? AND number = ? AND status = 'running'",
                (campaign_id, number),
            )

    def abandon_running(self) -> int:
        """At start-up: rounds left ``running`` by a stopped process are forgotten; returns how many."""
        with self._tx() as c:
            return int(c.execute("DELETE FROM rounds WHERE status = 'running'").rowcount)

    def round(self, campaign_id: str, number: int) -> RoundRecord:
        rows = self._read("SELECT * FROM rounds WHERE campaign_id = ? AND number = ?", (campaign_id, number))
        if not rows:
            raise LookupError(f"campaign {campaign_id} has no round {number}")
        return _round(rows[0])

    def rounds(self, campaign_id: str, *, done_only: bool = True) -> list[RoundRecord]:
        where = " AND status = 'done'" if done_only else ""
        sql = f"SELECT * FROM rounds WHERE campaign_id = ?{where} ORDER BY number"
        rows = self._read(sql, (campaign_id,))
        return [_round(r) for r in rows]

    # -- results -----------------------------------------------------------------------------------
    def add_results(self, campaign_id: str, rows: Sequence[NewResult]) -> tuple[int, list[ResultRecord]]:
        """Store one upload (every row, accepted or not) as the next batch; returns (batch, records)."""
        now = time.time()
        with self._tx() as c:
            last = c.execute(
                "SELECT COALESCE(MAX(batch), 0) AS n FROM results WHERE campaign_id = ?", (campaign_id,)
            ).fetchone()
            batch = int(last["n"]) + 1
            for r in rows:
                c.execute(
                    "INSERT INTO results (campaign_id, batch, row, created_at, formula, conditions_json, "
                    "values_json, accepted, error, round, predicted_json) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        campaign_id,
                        batch,
                        r.row,
                        now,
                        r.formula,
                        json.dumps(dict(r.conditions)),
                        json.dumps(dict(r.values)),
                        int(r.accepted),
                        r.error,
                        r.round,
                        json.dumps({k: dict(v) for k, v in r.predicted.items()}),
                    ),
                )
        got = self._read(
            "SELECT * FROM results WHERE campaign_id = ? AND batch = ? ORDER BY id", (campaign_id, batch)
        )
        return batch, [_result(r) for r in got]

    def results(self, campaign_id: str, *, accepted_only: bool = False) -> list[ResultRecord]:
        """Every stored row in upload order (``accepted_only``: the ones the models learn from)."""
        where = " AND accepted = 1" if accepted_only else ""
        rows = self._read(f"SELECT * FROM results WHERE campaign_id = ?{where} ORDER BY id", (campaign_id,))
        return [_result(r) for r in rows]

    # -- refits ------------------------------------------------------------------------------------
    def add_refit(
        self,
        campaign_id: str,
        *,
        target: str,
        version: str,
        run_id: str,
        n_rows: int,
        metrics: Mapping[str, float],
    ) -> RefitRecord:
        now = time.time()
        with self._tx() as c:
            c.execute(
                "INSERT INTO refits (campaign_id, target, version, run_id, n_rows, created_at, metrics_json) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (campaign_id, target, version, run_id, int(n_rows), now, json.dumps(dict(metrics))),
            )
        return RefitRecord(campaign_id, target, version, run_id, int(n_rows), now, dict(metrics))

    def refits(self, campaign_id: str) -> list[RefitRecord]:
        rows = self._read("SELECT * FROM refits WHERE campaign_id = ? ORDER BY created_at", (campaign_id,))
        return [
            RefitRecord(
                r["campaign_id"],
                r["target"],
                r["version"],
                r["run_id"],
                r["n_rows"],
                r["created_at"],
                json.loads(r["metrics_json"]),
            )
            for r in rows
        ]

    def latest_refits(self, campaign_id: str) -> dict[str, RefitRecord]:
        """The newest campaign model per target (what later proposals use)."""
        out: dict[str, RefitRecord] = {}
        for r in self.refits(campaign_id):
            out[r.target] = r
        return out


def _campaign(row: sqlite3.Row) -> CampaignRecord:
    return CampaignRecord(
        id=row["id"],
        name=row["name"],
        created_at=row["created_at"],
        spec=json.loads(row["spec_json"]),
        spec_text=row["spec_text"],
        spec_sha256=row["spec_sha256"],
        objectives=json.loads(row["objectives_json"]),
        acquisition=json.loads(row["acquisition_json"]),
        seed=int(row["seed"]),
        reference=row["reference"],
    )


def _round(row: sqlite3.Row) -> RoundRecord:
    return RoundRecord(
        campaign_id=row["campaign_id"],
        number=int(row["number"]),
        status=row["status"],
        created_at=row["created_at"],
        finished_at=row["finished_at"],
        seed=int(row["seed"]),
        k=int(row["k"]),
        spec_hash=row["spec_hash"],
        model_versions=json.loads(row["model_versions_json"]),
        proposals=json.loads(row["proposals_json"]),
        counts=json.loads(row["counts_json"]),
        n_measured=int(row["n_measured"]),
        mlflow_run_id=row["mlflow_run_id"],
    )


def _result(row: sqlite3.Row) -> ResultRecord:
    return ResultRecord(
        id=int(row["id"]),
        campaign_id=row["campaign_id"],
        batch=int(row["batch"]),
        row=int(row["row"]),
        created_at=row["created_at"],
        formula=row["formula"],
        conditions=json.loads(row["conditions_json"]),
        values=json.loads(row["values_json"]),
        accepted=bool(row["accepted"]),
        error=row["error"],
        round=None if row["round"] is None else int(row["round"]),
        predicted=json.loads(row["predicted_json"]),
    )
