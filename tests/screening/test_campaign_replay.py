"""The offline replay loop (screening.campaign.replay) on a synthetic pool of P2 dopings with known values:
no candidate revealed twice, proposals exclude what was revealed, experiments count the starting rows,
random selection is reproducible by seed, and a score table that ranks the pool well beats random."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

from models.targets import TargetName
from screening.campaign import CampaignObjective, Measurement
from screening.campaign.replay import ReplayPool, batch_diversity, experiments, replay, summarise, top_rows
from screening.schema import Field, column

T = TargetName.CAPACITY_RETENTION


def _pool() -> ReplayPool:
    """Four tetravalent dopants on the Mn site of Na0.6Li0.2Mn0.8O2 at ten fractions (40 neutral rows)."""
    formulas, values = [], []
    for dopant, slope in (("Ru", 60.0), ("Ti", 20.0), ("Sn", -10.0), ("Zr", 5.0)):
        for x in np.round(np.arange(1, 11) * 0.02, 4):
            formulas.append(f"Na0.6Li0.2Mn{round(0.8 - x, 4)}{dopant}{x}O2")
            values.append(80.0 + slope * x)
    frame = pd.DataFrame({"formula": formulas, "cycles": 100.0})
    return ReplayPool("p2", frame, np.array(values), CampaignObjective(target=T, direction="max"))


def _informative(pool: ReplayPool, seen: list[list[str]]) -> object:
    """A score table ranking the pool nearly right (measured value + small noise, std 2); records the
    measured formulas it was called with."""
    noise = np.random.default_rng(0).normal(0.0, 0.5, len(pool.frame))
    mean = pool.values + noise

    def score(measured: Sequence[Measurement]) -> pd.DataFrame:
        seen.append([m.formula for m in measured])
        out = pool.frame.copy()
        out[column(T, Field.PREDICTION)] = mean
        out[column(T, Field.STD)] = 2.0
        out[column(T, Field.IN_DOMAIN)] = True
        return out

    return score


def test_replay_invariants_and_an_informative_model_beats_random() -> None:
    pool = _pool()
    seen: list[list[str]] = []
    score = _informative(pool, seen)
    seeds = range(20)
    traces = {
        s: [
            replay(pool, s, None if s == "random" else score, seed=seed, k=4, n_start=3)  # type: ignore[arg-type]
            for seed in seeds
        ]
        for s in ("campaign", "greedy", "random")
    }
    formulas = pool.frame["formula"].to_numpy()
    for trs in traces.values():
        for tr in trs:
            assert len(set(tr.revealed)) == len(tr.revealed)  # nothing revealed (proposed) twice
            assert tr.rounds[:3] == [0, 0, 0]  # the starting rows count as experiments
            assert tr.experiments_to_top is not None and tr.experiments_to_top >= 3
            assert (tr.experiments_to_top - 3) % 4 == 0  # whole batches after the start
            top = top_rows(pool.values, "max")
            hit = tr.rounds[tr.experiments_to_top - 1]  # the round of the first top row
            assert top[[r for r, n in zip(tr.revealed, tr.rounds, strict=True) if n == hit]].any()
            assert not top[[r for r, n in zip(tr.revealed, tr.rounds, strict=True) if n < hit]].any()
    # each call saw exactly the rows revealed before it, and the batch it led to excludes them
    campaign = traces["campaign"][0]
    revealed_by_round = [set(formulas[campaign.revealed[: 3 + 4 * r]]) for r in range(max(campaign.rounds))]
    assert [set(s) for s in seen[: len(revealed_by_round)]] == revealed_by_round
    # the same seed gives the same random campaign (start rows shared with the other strategies)
    again = replay(pool, "random", None, seed=7, k=4, n_start=3)
    assert again.revealed == traces["random"][7].revealed
    assert traces["random"][7].revealed[:3] == traces["campaign"][7].revealed[:3]
    assert replay(pool, "random", None, seed=8, k=4, n_start=3).revealed != again.revealed
    mean = {s: summarise(experiments(trs, len(formulas)))[0] for s, trs in traces.items()}
    assert mean["campaign"] < 0.6 * mean["random"], mean
    assert mean["greedy"] < 0.6 * mean["random"], mean


def test_every_row_top_stops_at_the_start_and_min_rounds_keeps_going() -> None:
    pool = _pool()
    tr = replay(pool, "random", None, seed=1, k=4, n_start=3, share=1.0)
    assert tr.experiments_to_top == 3 and len(tr.revealed) == 3
    tr = replay(pool, "random", None, seed=1, k=4, n_start=3, share=1.0, min_rounds=5)
    assert tr.experiments_to_top == 3 and len(tr.revealed) == 3 + 5 * 4
    assert len(tr.best_after_round) == 6 and tr.best_after(5) == max(pool.values[tr.revealed])
    # the pool runs out: the last batch is what is left, and never finding a top row counts the pool size
    assert experiments([replay(pool, "random", None, seed=1, k=4, n_start=3, share=1e-9)], 40)[0] <= 40


def test_batch_diversity_and_bad_inputs() -> None:
    from featurize.composition import parse_formula

    same = [parse_formula("Na0.6Li0.2Mn0.7Ru0.1O2")] * 2
    assert batch_diversity(same) == 0.0
    assert batch_diversity([parse_formula("NaCl"), parse_formula("KBr")]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="strategy"):
        replay(_pool(), "thompson", None, seed=0)
    with pytest.raises(ValueError, match="score function"):
        replay(_pool(), "campaign", None, seed=0)
    with pytest.raises(ValueError, match="n_start"):
        replay(_pool(), "random", None, seed=0, n_start=40)
