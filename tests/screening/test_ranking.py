"""Ranking modes on small hand-made tables: Pareto correctness, UCB ordering, EI vs a baseline, filters."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from screening.ranking import RankingConfig, describe, pareto_ranks, parse_ranking, rank

CATHODE = ("average_voltage", "capacity_retention")


def table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Columns as score_candidates writes them; each row gives {target: (mean, std)} plus extras."""
    out = []
    for i, r in enumerate(rows):
        d: dict[str, Any] = {
            "candidate_id": i,
            "formula": r.get("formula", f"C{i}"),
            "is_host": r.get("host", False),
        }
        for t in CATHODE:
            mean, std = r.get(t, (np.nan, np.nan))
            d[f"{t}_prediction"] = mean
            d[f"{t}_std"] = std
            d[f"{t}_in_domain"] = r.get("in_domain", True)
            d[f"{t}_domain_reason"] = "" if r.get("in_domain", True) else "unseen element Xe"
            d[f"{t}_error"] = "" if np.isfinite(mean) else "bad formula"
        out.append(d)
    return pd.DataFrame(out)


def config(**mapping: Any) -> RankingConfig:
    return parse_ranking(mapping, CATHODE)


def by_formula(ranked: pd.DataFrame) -> dict[str, Any]:
    return dict(zip(ranked["formula"], ranked["rank"], strict=True))


def test_pareto_ranks_hand_made() -> None:
    pts = np.array([[1, 5], [2, 4], [3, 3], [2, 2], [1, 1], [3, 3], [0, 6], [2.5, 1]])
    assert pareto_ranks(pts, 10).tolist() == [1, 1, 1, 2, 3, 1, 1, 2]
    assert pareto_ranks(pts, 1).tolist() == [1, 1, 1, 0, 0, 1, 1, 0]
    assert pareto_ranks(np.zeros((0, 2)), 5).tolist() == []


def test_pareto_mode_orders_fronts_then_score() -> None:
    df = table(
        [
            {"average_voltage": (3.0, 0.1), "capacity_retention": (90, 5)},  # front 1
            {"average_voltage": (3.5, 0.1), "capacity_retention": (80, 5)},  # front 1
            {"average_voltage": (2.9, 0.1), "capacity_retention": (85, 5)},  # dominated by row 0
            {"average_voltage": (3.2, 0.1), "capacity_retention": (70, 5)},  # dominated by row 1
            {"average_voltage": (2.0, 0.1), "capacity_retention": (60, 5)},  # front 3
        ]
    )
    ranked = rank(
        df, config(mode="pareto", objectives={"capacity_retention": {"weight": 3}, "average_voltage": {}})
    )
    assert len(ranked) == 5
    fronts = dict(zip(ranked["formula"], ranked["pareto_rank"], strict=True))
    assert fronts == {"C0": 1, "C1": 1, "C2": 2, "C3": 2, "C4": 3}
    assert ranked["pareto_front"].tolist() == [True, True, False, False, False]
    assert ranked["formula"].tolist()[:2] == ["C0", "C1"]  # retention weighted 3x: C0 first in front 1
    assert ranked["rank"].tolist() == [1, 2, 3, 4, 5]
    assert ranked.attrs["ranked_by"].startswith("mode=pareto")


def test_value_vs_ucb_ordering() -> None:
    df = table(
        [
            {"capacity_retention": (80, 1)},
            {"capacity_retention": (78, 10)},
            {"capacity_retention": (70, 2)},
        ]
    )
    value = rank(df, config(mode="value", objectives=["capacity_retention"]))
    assert value["formula"].tolist() == ["C0", "C1", "C2"]
    assert value["score"].tolist() == [80, 78, 70]
    ucb = rank(df, config(mode="ucb", kappa=1.0, objectives=["capacity_retention"]))
    assert ucb["formula"].tolist() == ["C1", "C0", "C2"]
    assert ucb["capacity_retention_score"].tolist() == [88, 81, 72]
    # kappa 0 is the value ranking
    assert rank(df, config(mode="ucb", kappa=0.0, objectives=["capacity_retention"]))["formula"].tolist() == [
        "C0",
        "C1",
        "C2",
    ]


def test_ucb_lower_is_better_uses_mean_minus_kappa_std() -> None:
    df = table([{"average_voltage": (3.0, 0.1)}, {"average_voltage": (3.1, 0.5)}])
    ranked = rank(
        df, config(mode="ucb", kappa=2, objectives=[{"target": "average_voltage", "direction": "min"}])
    )
    assert ranked["formula"].tolist() == ["C1", "C0"]  # 3.1 - 1.0 = 2.1 beats 3.0 - 0.2 = 2.8
    assert ranked["average_voltage_score"].tolist() == pytest.approx([2.1, 2.8])
    assert ranked["score"].tolist() == pytest.approx([-2.1, -2.8])  # score is higher-is-better


def test_ei_against_host_and_stated_baseline() -> None:
    df = table(
        [
            {"capacity_retention": (50, 5), "host": True, "formula": "host"},
            {"capacity_retention": (55, 5)},
            {"capacity_retention": (48, 20)},
            {"capacity_retention": (52, 0)},
        ]
    )
    ranked = rank(df, config(mode="ei", objectives=["capacity_retention"]))
    scores = dict(zip(ranked["formula"], ranked["score"], strict=True))

    def ei(mu: float, sd: float, best: float) -> float:
        z = (mu - best) / sd
        return (mu - best) * norm.cdf(z) + sd * norm.pdf(z)

    assert scores["C1"] == pytest.approx(ei(55, 5, 50))
    assert scores["C2"] == pytest.approx(ei(48, 20, 50))
    assert scores["C3"] == pytest.approx(2.0)  # no uncertainty: plain improvement
    assert scores["host"] == pytest.approx(ei(50, 5, 50))
    assert ranked["formula"].tolist()[0] == "C2"  # wide uncertainty beats a sure small gain
    stated = rank(
        df, config(mode="ei", baseline={"capacity_retention": 60}, objectives=["capacity_retention"])
    )
    s2 = dict(zip(stated["formula"], stated["score"], strict=True))
    assert s2["C3"] == 0.0 and s2["C1"] == pytest.approx(ei(55, 5, 60))
    assert "capacity_retention=60" in stated.attrs["ranked_by"]
    with pytest.raises(ValueError, match="no baseline for capacity_retention"):
        rank(df.assign(is_host=False), config(mode="ei", objectives=["capacity_retention"]))


def test_filters_keep_every_row_with_a_reason() -> None:
    df = table(
        [
            {"capacity_retention": (90, 1), "average_voltage": (3, 0.1), "in_domain": False},
            {"capacity_retention": (60, 1), "average_voltage": (3, 0.1)},
            {"capacity_retention": (85, 30), "average_voltage": (3, 0.1)},
            {"capacity_retention": (np.nan, np.nan), "average_voltage": (3, 0.1)},
            {"capacity_retention": (80, 2), "average_voltage": (3, 0.1)},
        ]
    )
    cfg = config(
        mode="value",
        in_domain_only=True,
        objectives={"capacity_retention": {"threshold": 70, "max_std": 10}, "average_voltage": {"weight": 0}},
    )
    ranked = rank(df, cfg)
    assert len(ranked) == 5
    reasons = dict(zip(ranked["formula"], ranked["excluded_reason"], strict=True))
    assert reasons == {
        "C0": "capacity_retention out of domain: unseen element Xe",
        "C1": "capacity_retention below threshold 70",
        "C2": "capacity_retention std above 10",
        "C3": "no capacity_retention prediction: bad formula",
        "C4": "",
    }
    ranks = by_formula(ranked)
    assert ranks["C4"] == 1 and all(pd.isna(ranks[k]) for k in ("C0", "C1", "C2", "C3"))
    assert ranked["formula"].iloc[0] == "C4" and not ranked["eligible"].iloc[1:].any()
    assert "in-domain only" in describe(cfg)


def test_multi_objective_score_is_normalised_weighted_sum() -> None:
    df = table(
        [
            {"capacity_retention": (90, 1), "average_voltage": (2.0, 0.1)},
            {"capacity_retention": (70, 1), "average_voltage": (4.0, 0.1)},
            {"capacity_retention": (80, 1), "average_voltage": (3.0, 0.1)},
        ]
    )
    ranked = rank(
        df, config(objectives={"capacity_retention": {"weight": 3}, "average_voltage": {"weight": 1}})
    )
    scores = dict(zip(ranked["formula"], ranked["score"], strict=True))
    assert scores == pytest.approx({"C0": 0.75, "C1": 0.25, "C2": 0.5})


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"mode": "greedy"}, "mode: unknown mode 'greedy'"),
        ({"kappa": -1}, "kappa: must be >= 0"),
        (
            {"objectives": ["ionic_conductivity"]},
            r"objectives\[0\]: 'ionic_conductivity' is not a screened target",
        ),
        ({"objectives": {"capacity_retention": {"direction": "up"}}}, "direction: 'up'"),
        ({"objectives": {"capacity_retention": {"weight": 0}}}, "all weights are 0"),
        ({"objectives": []}, "objectives: empty"),
        ({"baseline": {"ionic_conductivity": 1}}, "baseline.ionic_conductivity: not a screened target"),
        ({"in_domain_only": "yes"}, "in_domain_only: needs true/false"),
        ({"colour": 1}, r"unknown field\(s\) \['colour'\]"),
    ],
)
def test_ranking_config_errors(mapping: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_ranking(mapping, CATHODE)


def test_describe_names_mode_and_parameters() -> None:
    text = describe(config(mode="ucb", kappa=1.5, objectives={"capacity_retention": {"threshold": 70}}))
    assert "mode=ucb" in text and "1.5*std" in text and "capacity_retention [max, weight 1, >= 70]" in text


def test_pareto_possible_shows_what_uncertainty_allows() -> None:
    df = table(
        [
            {"average_voltage": (3.0, 0.01), "capacity_retention": (90, 0.1)},  # front
            {"average_voltage": (2.9, 0.01), "capacity_retention": (89, 5.0)},  # dominated, but only by noise
            {"average_voltage": (2.0, 0.01), "capacity_retention": (50, 0.1)},  # clearly dominated
            {"average_voltage": (np.nan, np.nan), "capacity_retention": (95, 0.1)},  # not eligible
        ]
    )
    ranked = rank(df, config(mode="pareto", kappa=1.0))
    possible = dict(zip(ranked["formula"], ranked["pareto_possible"], strict=True))
    assert possible == {"C0": True, "C1": True, "C2": False, "C3": False}
    front = dict(zip(ranked["formula"], ranked["pareto_front"], strict=True))
    assert front == {"C0": True, "C1": False, "C2": False, "C3": False}
    # kappa 0: possible == on the front
    strict = rank(df, config(mode="pareto", kappa=0.0))
    assert (strict["pareto_possible"] == strict["pareto_front"]).all()
