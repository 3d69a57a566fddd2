"""The campaign store on a real SQLite file: what is kept, the name rule, conflicts, restarts."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from service.campaigns.store import (
    SCHEMA_VERSION,
    CampaignExistsError,
    CampaignStore,
    NewResult,
    RoundInProgressError,
    StoreVersionError,
    UnknownCampaignError,
    check_name,
)

SPEC = {"name": "nasicon", "family": "nasicon", "host": "Na3Zr2Si2PO12"}


def _create(store: CampaignStore, name: str = "nasicon-a") -> str:
    record = store.create(
        name=name,
        spec=SPEC,
        spec_text="name: nasicon\n",
        spec_sha256="ab" * 32,
        objectives=[{"target": "ionic_conductivity", "direction": "max", "weight": 1.0, "threshold": None}],
        acquisition={"kind": "ei"},
        seed=7,
        reference="Na3Zr2Si2PO12",
    )
    return record.id


def test_a_campaign_its_rounds_and_results_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "campaigns.db"
    store = CampaignStore(path)
    cid = _create(store)
    rnd = store.begin_round(cid, k=3, seed_of=lambda n: 100 + n)
    assert (rnd.number, rnd.status, rnd.seed) == (1, "running", 101)
    store.finish_round(
        cid,
        1,
        spec_hash="f" * 64,
        model_versions={"ionic_conductivity": "3"},
        proposals=[{"formula": "Na3.1Zr1.9Sc0.1Si2PO12", "reason": "EI 0.4"}],
        counts={"scored": 10},
        n_measured=0,
    )
    batch, rows = store.add_results(
        cid,
        [
            NewResult(1, "Na3.1Zr1.9Sc0.1Si2PO12", {}, {"ionic_conductivity": -2.9}, True, round=1),
            NewResult(2, "Na2XyO3", {}, {}, False, error='"Na2XyO3": unknown element Xy'),
        ],
    )
    assert batch == 1 and [r.row for r in rows] == [1, 2]
    store.close()

    again = CampaignStore(path)
    record = again.get("nasicon-a")
    assert record.id == cid and again.get(cid).name == "nasicon-a"
    assert record.seed == 7 and record.spec == SPEC and record.spec_text == "name: nasicon\n"
    (done,) = again.rounds(cid)
    assert done.status == "done" and done.model_versions == {"ionic_conductivity": "3"}
    assert done.proposals[0]["formula"] == "Na3.1Zr1.9Sc0.1Si2PO12"
    taken, refused = again.results(cid)
    assert taken.accepted and taken.values == {"ionic_conductivity": -2.9} and taken.round == 1
    assert not refused.accepted and "unknown element Xy" in refused.error
    assert [r.row for r in again.results(cid, accepted_only=True)] == [1]
    again.close()


def test_names_are_checked_and_unique(tmp_path: Path) -> None:
    store = CampaignStore(tmp_path / "c.db")
    _create(store, "p2-ru")
    with pytest.raises(CampaignExistsError, match="p2-ru"):
        _create(store, "p2-ru")
    for bad in ("", "P2", "a b", "../x", "-x", "x" * 61):
        with pytest.raises(ValueError, match="campaign name"):
            check_name(bad)
    with pytest.raises(UnknownCampaignError):
        store.get("nope")


def test_one_round_at_a_time_and_a_failed_round_gives_its_number_back(tmp_path: Path) -> None:
    store = CampaignStore(tmp_path / "c.db")
    cid = _create(store)
    store.begin_round(cid, k=2, seed_of=lambda n: n)
    with pytest.raises(RoundInProgressError):
        store.begin_round(cid, k=2, seed_of=lambda n: n)
    store.abandon_round(cid, 1)
    assert store.begin_round(cid, k=2, seed_of=lambda n: n).number == 1
    # a server that stopped mid-proposal: the next start forgets the running round
    assert store.abandon_running() == 1
    assert store.rounds(cid, done_only=False) == []


def test_a_store_of_another_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    CampaignStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(StoreVersionError, match="schema version"):
        CampaignStore(path)
