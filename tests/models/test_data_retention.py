"""Cleaning rules of the retention curation, on small hand-made raw frames (all cells text, as read)."""

from __future__ import annotations

import pandas as pd
import pytest

from featurize.composition import parse_formula
from models.data.retention import COLUMNS, curate_retention

_RAW_COLUMNS = [
    "Doi", "Year", "Name", "Abbreviation", "Sintering temperature", "Sintering time", "Category", "Cycle",
    "Capacity", "Retention", "Current: mAg-1", "Current: C", "Voltage lower limit", "Voltage upper limit",
    "Elements",
]  # fmt: skip


def row(
    name: str = "P2-Na0.67MnO2",
    *,
    doi: str = "10.1/x",
    cycle: str = "100.0",
    capacity: str = "",
    retention: str = "",
    current: str = "20.0",
    c_rate: str = "",
    low: str = "2.0",
    high: str = "4.0",
    category: str = "Cycling performance",
    sinter_t: str = "900.0",
) -> dict[str, str]:
    return {
        "Doi": doi, "Year": "2020", "Name": name, "Abbreviation": "", "Sintering temperature": sinter_t,
        "Sintering time": "12.0", "Category": category, "Cycle": cycle, "Capacity": capacity,
        "Retention": retention, "Current: mAg-1": current, "Current: C": c_rate, "Voltage lower limit": low,
        "Voltage upper limit": high, "Elements": "{}",
    }  # fmt: skip


def curate(*rows: dict[str, str]):
    return curate_retention(pd.DataFrame(list(rows), columns=_RAW_COLUMNS, dtype=object))


def test_reported_retention_row_becomes_one_clean_row():
    res = curate(row(retention="85.5"))
    assert list(res.table.columns) == COLUMNS
    r = res.table.iloc[0]
    assert r["formula"] == parse_formula("Na0.67MnO2").formula
    assert r["structure_type"] == "P2"
    assert r["formula_raw"] == "P2-Na0.67MnO2"
    assert (r["retention_pct"], r["cycles"], r["current_mA_g"], r["voltage_low_V"], r["voltage_high_V"]) == (
        85.5, 100.0, 20.0, 2.0, 4.0,
    )  # fmt: skip
    assert r["doi"] == "10.1/x" and not r["retention_derived"]
    assert res.report.empty


def test_rate_performance_rows_are_not_retention():
    res = curate(row(category="Rate performance", cycle="", capacity="120"), row(retention="90"))
    assert len(res.table) == 1
    assert res.report["reason"].str.startswith("rate-performance").sum() == 1


def test_retention_split_over_rows_is_derived_from_first_cycle_capacity():
    res = curate(row(cycle="1.0", capacity="120.0"), row(cycle="100.0", capacity="90.0"))
    assert len(res.table) == 1
    r = res.table.iloc[0]
    assert r["retention_pct"] == pytest.approx(75.0)
    assert r["retention_derived"]
    assert r["cycles"] == 100


def test_reported_retention_wins_over_a_derived_one():
    res = curate(
        row(cycle="1.0", capacity="120.0"), row(cycle="100.0", capacity="90.0"), row(retention="74.0")
    )
    assert len(res.table) == 1
    assert res.table.iloc[0]["retention_pct"] == pytest.approx(74.0)
    assert not res.table.iloc[0]["retention_derived"]


def test_no_derivation_across_different_conditions_or_ambiguous_first_cycles():
    res = curate(
        row(cycle="1.0", capacity="120.0", current="20.0"),
        row(cycle="100.0", capacity="90.0", current="200.0"),  # other current: no reference
        row(name="NaMnO2", cycle="1.0", capacity="100.0"),
        row(name="NaMnO2", cycle="1.0", capacity="110.0"),  # two references: ambiguous
        row(name="NaMnO2", cycle="50.0", capacity="90.0"),
    )
    assert res.table.empty
    assert res.report["reason"].str.contains("without one first-cycle capacity").sum() == 2


def test_missing_current_and_window_filled_from_agreeing_siblings_only():
    res = curate(
        row(cycle="1.0", capacity="120.0", current="50.0", low="1.5", high="4.3"),
        row(cycle="100.0", retention="80.0", current="", low="", high=""),
        row(name="NaNiO2", cycle="1.0", capacity="120.0", current="20.0"),
        row(name="NaNiO2", cycle="1.0", capacity="100.0", current="200.0"),
        row(name="NaNiO2", cycle="300.0", retention="70.0", current=""),
    )
    t = res.table.set_index("formula")
    filled = t.loc[parse_formula("Na0.67MnO2").formula]
    assert (filled["current_mA_g"], filled["voltage_low_V"], filled["voltage_high_V"]) == (50.0, 1.5, 4.3)
    assert filled["current_source"] == "filled: same material and DOI"
    assert filled["window_source"] == "filled: same material and DOI"
    ambiguous = t.loc[parse_formula("NaNiO2").formula]
    assert pd.isna(ambiguous["current_mA_g"]) and ambiguous["current_source"] == "missing"
    assert (res.report["action"] == "filled").sum() == 2


def test_c_rate_is_kept_when_it_is_all_there_is():
    res = curate(row(retention="88", current="", c_rate="1.0"))
    r = res.table.iloc[0]
    assert pd.isna(r["current_mA_g"]) and r["c_rate"] == 1.0 and r["current_source"] == "reported"


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"retention": "120"}, "retention above 100 %"),
        ({"retention": "0"}, "retention <= 0 %"),
        ({"retention": "80", "cycle": "0"}, "cycle number missing or < 1"),
        ({"retention": "80", "low": "4.0", "high": "2.0"}, "lower voltage cut-off >= upper cut-off"),
        ({"retention": "80", "current": "0"}, "current <= 0"),
        ({"retention": "80", "low": "0.01", "high": "3.0"}, "anode-range window"),
        ({"retention": "eighty"}, "non-numeric value in a numeric column"),
    ],
)
def test_impossible_values_are_dropped_with_their_reason(kwargs, reason):
    res = curate(row(**kwargs), row(name="NaCrO2", retention="90"))
    assert list(res.table["formula"]) == [parse_formula("NaCrO2").formula]
    dropped = res.report[res.report["action"] == "dropped"]
    assert len(dropped) == 1 and dropped["reason"].iloc[0].startswith(reason)


def test_retention_slightly_above_100_is_kept_within_tolerance():
    assert curate(row(retention="103.0")).table.iloc[0]["retention_pct"] == pytest.approx(103.0)


def test_duplicates_merge_by_median_and_polymorph_prefix_is_propagated():
    res = curate(row(retention="80"), row(retention="90"), row(name="Na0.67MnO2", retention="70"))
    assert len(res.table) == 1
    r = res.table.iloc[0]
    assert r["retention_pct"] == pytest.approx(80.0) and r["n_measurements"] == 3
    assert r["structure_type"] == "P2"
    assert set(res.report["action"]) == {"merged", "filled"}


def test_distinct_conditions_are_not_merged():
    res = curate(
        row(retention="80"), row(retention="70", cycle="200.0"), row(retention="60", sinter_t="800.0")
    )
    assert len(res.table) == 3


def test_unparseable_non_oxide_and_coated_names():
    res = curate(
        row(name="Air-Na0.65MnO2", retention="80"),
        row(name="NaN3", retention="80"),  # sodium azide text: parses, but it is no oxide
        row(name="C-NaCrO2", retention="95"),
    )
    assert list(res.table["formula"]) == [parse_formula("NaCrO2").formula]
    assert res.table.iloc[0]["coating"] == "C"
    reasons = dict(zip(res.report["formula_raw"], res.report["reason"], strict=True))
    assert reasons["Air-Na0.65MnO2"] == "unparseable formula"
    assert reasons["NaN3"].startswith("no oxygen")
