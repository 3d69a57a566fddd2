"""Report: counts add up, the top table is the best eligible rows, the plots are drawn from the data."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from chunk_scorers import arithmetic_chunk

from screening.ranking import Objective, RankingConfig, rank
from screening.report import best_score_grid, count_outcomes, heatmap_figure, pareto_figure, top_table


def _ranked(two_objectives: bool) -> pd.DataFrame:
    scored = arithmetic_chunk(0, 120).scored.copy()
    n = len(scored)
    scored["is_host"] = False
    scored["dopant_valence"] = 4.0
    scored["average_voltage_lower_90"] = (
        scored["average_voltage_prediction"] - 1.645 * scored["average_voltage_std"]
    )
    scored["average_voltage_upper_90"] = (
        scored["average_voltage_prediction"] + 1.645 * scored["average_voltage_std"]
    )
    scored["average_voltage_in_domain"] = scored["fraction"] < 0.15
    scored["average_voltage_error"] = ""
    scored.loc[5, "average_voltage_error"] = "model failed"
    scored.loc[5, "average_voltage_prediction"] = np.nan
    objectives = [Objective("average_voltage", "max")]
    if two_objectives:
        scored["capacity_retention_prediction"] = 90 - 30 * scored["fraction"] + np.cos(np.arange(n))
        scored["capacity_retention_std"] = 3.0
        objectives.append(Objective("capacity_retention", "max"))
    mode = "pareto" if two_objectives else "value"
    return rank(scored, RankingConfig(mode=mode, objectives=tuple(objectives)))


def test_counts_add_up() -> None:
    ranked = _ranked(False)
    counts = count_outcomes(
        ranked,
        ["average_voltage"],
        {"not_charge_balanced": 17, "duplicate": 3},
        failed_chunks=1,
        failed_chunk_candidates=50,
    )
    assert counts.generated == len(ranked) + 20
    assert (counts.rejected_neutrality, counts.rejected_other) == (17, 3)
    assert counts.failed_predictions == 1
    assert counts.scored == len(ranked) - 1
    expected_ood = int((~ranked["average_voltage_in_domain"] & (ranked["average_voltage_error"] == "")).sum())
    assert counts.out_of_domain == expected_ood > 0
    assert counts.eligible == len(ranked) - 1
    assert counts.failed_chunks == 1 and counts.failed_chunk_candidates == 50


def test_counts_read_codes_not_reason_text() -> None:
    """A reason sentence is for people; counting reads the code, and an unknown code is refused."""
    ranked = _ranked(False)
    counts = count_outcomes(ranked, ["average_voltage"], {"negative_amount": 4, "compensation_limit": 2})
    assert (counts.rejected_neutrality, counts.rejected_other) == (0, 6)
    with pytest.raises(ValueError):
        count_outcomes(ranked, ["average_voltage"], {"not charge balanced: needs Mn above +4": 1})


def test_top_table_is_the_best_eligible_rows_in_rank_order() -> None:
    ranked = _ranked(False)
    top = top_table(ranked, ["average_voltage"], 5)
    eligible = ranked[ranked["eligible"]]
    best = eligible.sort_values("average_voltage_prediction", ascending=False).head(5)
    assert top["rank"].tolist() == [1, 2, 3, 4, 5]
    assert top["formula"].tolist() == best["formula"].tolist()
    assert top["dopant"].iloc[0].endswith("4+")
    assert {"average_voltage_std", "average_voltage_lower_90", "average_voltage_in_domain", "score"} <= set(
        top
    )


def test_heatmap_grid_holds_the_best_score_per_dopant_and_fraction() -> None:
    ranked = _ranked(False)
    grid = best_score_grid(ranked)
    ok = ranked[ranked["eligible"]]
    assert grid.loc["Ti", 0.02] == ok[(ok["dopant"] == "Ti") & (ok["fraction"] == 0.02)]["score"].max()
    assert grid.max(axis=1).is_monotonic_decreasing  # best dopant first


def _png(fig: object) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")  # type: ignore[attr-defined]
    return buf.getvalue()


def test_plots_are_drawn() -> None:
    two = _ranked(True)
    heat = heatmap_figure(two, "test screen", "pareto mode")
    pareto = pareto_figure(two, ["average_voltage", "capacity_retention"], {"average_voltage": "V"}, "t")
    single = pareto_figure(_ranked(False), ["average_voltage"], {"average_voltage": "V"}, "t")
    for fig in (heat, pareto, single):
        assert _png(fig).startswith(b"\x89PNG")
    # the Pareto plot has one error-bar point per front member
    front = two[two["pareto_front"].astype(bool)]
    lines = [line for line in pareto.axes[0].get_lines() if line.get_marker() == "o"]
    assert len(lines[0].get_xdata()) == len(front) > 0
    assert len(heat.axes) == 2  # the heatmap and its colour bar
