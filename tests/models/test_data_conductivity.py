"""Cleaning rules of the conductivity curation, on small hand-made raw frames."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from featurize.composition import parse_formula
from models.data.conductivity import curate_conductivity, normalize_family, parse_sigma


def canon(text: str) -> str:
    return parse_formula(text).formula


def kang(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    """(formula, sigma, source DOI) rows in the Kang file's columns."""
    return pd.DataFrame(
        {
            "Formula": [r[0] for r in rows],
            "Type": ["NASICON"] * len(rows),
            "Ionic conductivity (S/cm)": [r[1] for r in rows],
            "Reference": ["7"] * len(rows),
            "Source": [r[2] for r in rows],
        },
        dtype=object,
    )


def xu(rows: list[tuple[str, str]], paper: bool = False) -> pd.DataFrame:
    df = pd.DataFrame({"Formula": [r[0] for r in rows], "S": [r[1] for r in rows]}, dtype=object)
    if paper:
        df["Paper"] = "T6"
    return df


def obelix(rows: list[tuple[str, str, str]]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(id, formula, sigma) rows; ids starting with 't' go to the test split."""
    all_rows = pd.DataFrame(
        {
            "ID": [r[0] for r in rows],
            "Reduced Composition": [r[1] for r in rows],
            "Ionic conductivity (S cm-1)": [r[2] for r in rows],
            "Family": ["garnet"] * len(rows),
            "DOI": ["10.1/obelix"] * len(rows),
        },
        dtype=object,
    )
    is_test = all_rows["ID"].map(lambda i: str(i).startswith("t")).astype(bool)
    test = all_rows[is_test][["ID"]]
    train = all_rows[~is_test][["ID"]]
    return all_rows, train, test


def liverpool(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    """(formula, sigma, temperature) rows."""
    return pd.DataFrame(
        {
            "ID": [str(i) for i in range(len(rows))],
            "composition": [r[0] for r in rows],
            "source": ["10.1/liv"] * len(rows),
            "temperature": [r[2] for r in rows],
            "target": [r[1] for r in rows],
            "family": ["Garnet"] * len(rows),
        },
        dtype=object,
    )


def curate(
    kang_rows: list[tuple[str, str, str]] | None = None,
    xu_rows: list[tuple[str, str]] | None = None,
    obelix_rows: list[tuple[str, str, str]] | None = None,
    liverpool_rows: list[tuple[str, str, str]] | None = None,
):
    o_all, o_train, o_test = obelix(obelix_rows or [])
    return curate_conductivity(
        kang(kang_rows or []),
        xu(xu_rows or []),
        xu([], paper=True),
        o_all,
        o_train,
        o_test,
        liverpool(liverpool_rows or []),
    )


def test_parse_sigma_reads_upper_bounds_as_censored():
    assert parse_sigma("<1E-10") == (1e-10, True, "")
    assert parse_sigma(" 2.5e-4 ") == (2.5e-4, False, "")
    for bad in ("", "abc", "0", "-1e-3", "nan", "inf"):
        value, _, error = parse_sigma(bad)
        assert math.isnan(value) and error, bad


def test_censored_obelix_label_keeps_its_bound_and_flag():
    res = curate(obelix_rows=[("a1", "Li7La3Zr2O12", "<1E-10"), ("a2", "Li3PS4", "1e-4")])
    t = res.table.set_index("formula")
    assert bool(t.loc["Li7La3Zr2O12", "censored"]) is True
    assert t.loc["Li7La3Zr2O12", "log10_sigma_s_cm"] == pytest.approx(-10.0)  # the bound, never 1e-15
    assert bool(t.loc["Li3PS4", "censored"]) is False
    assert t.loc["Li3PS4", "log10_sigma_s_cm"] == pytest.approx(-4.0)


def test_censored_duplicate_yields_to_measured_value_and_all_censored_keeps_tightest_bound():
    res = curate(
        obelix_rows=[
            ("a1", "Li3PS4", "<1E-8"),
            ("a2", "Li3PS4", "1e-6"),
            ("a3", "Li2S", "<1E-8"),
            ("a4", "Li2S", "<1E-10"),
        ]
    )
    t = res.table.set_index("formula")
    assert t.loc["Li3PS4", "log10_sigma_s_cm"] == pytest.approx(-6.0)
    assert not t.loc["Li3PS4", "censored"]
    assert t.loc["Li2S", "log10_sigma_s_cm"] == pytest.approx(-10.0)
    assert t.loc["Li2S", "censored"]
    assert set(res.report["action"]) == {"merged"}
    assert len(res.report) == 2


def test_kang_notation_and_nbsp_merge_by_median_log10():
    res = curate(
        kang_rows=[
            ("Na3Zr2(SiO4)2(PO4)\u00a0", "1e-3", "10.1/a"),
            ("Na3Zr2Si2PO12", "1e-5", "10.1/b"),
            ("Na3Zr2Si2PO12 ", "1e-4", ""),
        ]
    )
    assert len(res.table) == 1
    row = res.table.iloc[0]
    assert row["log10_sigma_s_cm"] == pytest.approx(-4.0)
    assert row["n_measurements"] == 3
    assert row["source"] == "10.1/a;10.1/b;kang2023:ref7"  # a missing DOI falls back to Kang's reference
    assert row["mobile_ion"] == "Na"
    assert row["formula_raw"] == "Na3Zr2(SiO4)2(PO4)\u00a0"  # raw text kept verbatim
    assert (res.report["action"] == "merged").sum() == 2


def test_kang_wins_over_xu_and_xu_only_formulas_stay():
    res = curate(
        kang_rows=[("NaZr2(PO4)3", "4.5e-6", "10.1/k")],
        xu_rows=[("NaZr2(PO4)3", "9e-6"), ("NaGe2(PO4)3", "1.1e-12")],
    )
    t = res.table.set_index("formula")
    assert t.loc[canon("NaZr2(PO4)3"), "dataset"] == "kang2023"
    assert t.loc[canon("NaZr2(PO4)3"), "log10_sigma_s_cm"] == pytest.approx(math.log10(4.5e-6))
    assert t.loc[canon("NaGe2(PO4)3"), "dataset"] == "xu2020"
    dropped = res.report[res.report["action"] == "dropped"]
    assert list(dropped["formula_raw"]) == ["NaZr2(PO4)3"]
    assert "kang2023 kept" in dropped["reason"].iloc[0]


def test_li_rows_of_the_na_sources_are_out_of_scope():
    res = curate(kang_rows=[("Li7La3Zr2O12", "1e-4", ""), ("Na3PS4", "1e-4", "")])
    assert list(res.table["mobile_ion"]) == ["Na"]
    assert res.report["reason"].str.contains("Li conductor in a Na source").sum() == 1


def test_liverpool_keeps_room_temperature_only_boundaries_included():
    res = curate(
        liverpool_rows=[
            ("Li3PS4", "1e-4", "15"),
            ("Li7P3S11", "1e-3", "35"),
            ("Li2S", "1e-9", "14.9"),
            ("LiI", "1e-7", "300"),
            ("LiBr", "1e-7", ""),
        ]
    )
    assert sorted(res.table["formula"]) == sorted([canon("Li3PS4"), canon("Li7P3S11")])
    assert set(res.table["temperature_c"]) == {15.0, 35.0}
    assert res.table["temperature_reported"].all()
    details = set(res.report["detail"])
    assert {"14.9 C", "300 C", "no temperature"} <= details


def test_obelix_wins_over_liverpool_and_keeps_its_split():
    res = curate(
        obelix_rows=[("a1", "Li7La3Zr2O12", "1e-4"), ("t1", "Li3PS4", "1e-4")],
        liverpool_rows=[("Li7La3Zr2O12", "5e-4", "25"), ("LiTi2(PO4)3", "1e-6", "25")],
    )
    t = res.table.set_index("formula")
    assert t.loc["Li7La3Zr2O12", "dataset"] == "obelix"
    assert t.loc["Li7La3Zr2O12", "obelix_split"] == "train"
    assert t.loc["Li3PS4", "obelix_split"] == "test"
    assert t.loc[canon("LiTi2(PO4)3"), "obelix_split"] == ""
    assert res.report["reason"].str.contains("obelix kept").sum() == 1


def test_unparseable_formula_and_bad_value_are_reported_never_nan():
    res = curate(obelix_rows=[("a1", "Li3Xy2O3", "1e-4"), ("a2", "Li3PS4", "n/a"), ("a3", "Li2S", "1e-7")])
    assert list(res.table["formula"]) == ["Li2S"]
    assert not res.table.isna().any().any()
    reasons = dict(zip(res.report["formula_raw"], res.report["reason"], strict=True))
    assert reasons["Li3Xy2O3"] == "unparseable formula"
    assert reasons["Li3PS4"] == "conductivity not a positive number"
    assert "Xy" in res.report.set_index("formula_raw").loc["Li3Xy2O3", "detail"]


def test_every_raw_row_is_in_the_table_or_the_report():
    kang_rows = [("NaZr2(PO4)3", "1e-5", ""), ("NaZr2(PO4)3", "2e-5", ""), ("Li3N", "1e-3", "")]
    obelix_rows = [("a1", "Li3PS4", "<1E-10"), ("a2", "Li3Qq", "1")]
    res = curate(kang_rows=kang_rows, obelix_rows=obelix_rows, liverpool_rows=[("Li3PS4", "1e-4", "25")])
    accounted = len(res.table) + res.report["action"].isin(["dropped", "merged"]).sum()
    assert accounted == 3 + 2 + 1


def test_family_labels_are_normalised_across_sources():
    assert normalize_family("perovskites") == "Perovskite"
    assert normalize_family("garnet") == normalize_family("Garnet") == "Garnet"
    assert normalize_family("") == "unknown"
    assert normalize_family("Phenakite") == "Phenakite"


def na_non_nasicon(rows: list[tuple[str, str, str, str, str]]) -> pd.DataFrame:
    """(formula, family, phase wording, sigma, temperature) rows in the hand-curated file's columns."""
    return pd.DataFrame(
        {
            "formula": [r[0] for r in rows],
            "label": [r[0] for r in rows],
            "family": [r[1] for r in rows],
            "crystalline_or_amorphous": [r[2] for r in rows],
            "sigma_S_cm": [r[3] for r in rows],
            "log10_sigma": ["" for _ in rows],
            "temperature_C": [r[4] for r in rows],
            "source": [f"DOI:10.1000/p{i} (Author et al.); read at github:x/y" for i in range(len(rows))],
            "quote": ["q"] * len(rows),
            "notes": ["primary"] * len(rows),
        },
        dtype=object,
    )


def test_na_non_nasicon_keeps_phases_apart_and_merges_within_one_phase():
    o_all, o_train, o_test = obelix([])
    raw = na_non_nasicon(
        [
            ("NaTaCl6", "halide", "amorphous", "4e-3", "RT"),
            ("NaTaCl6", "halide", "crystalline", "1e-4", "RT"),
            ("NaTaCl6", "halide", "crystalline (annealed)", "1e-6", "25"),
            ("Na3PS4", "sulfide", "amorphous (glass)", "6e-6", "RT"),
            ("Na3PS4", "sulfide", "glass-ceramic (cubic crystals)", "2e-4", "not stated"),
            ("NaTaOCl4", "oxyhalide", "not stated", "1.5e-3", "40"),
        ]
    )
    res = curate_conductivity(
        kang([("Na3PS4", "1e-4", "10.1/k")]), xu([]), xu([], paper=True), o_all, o_train, o_test,
        liverpool([]), raw,
    )  # fmt: skip
    t = res.table.set_index(["formula", "phase"])
    assert t.loc[("NaTaCl6", "amorphous"), "log10_sigma_s_cm"] == pytest.approx(math.log10(4e-3))
    crystalline = t.loc[("NaTaCl6", "crystalline")]
    assert crystalline["log10_sigma_s_cm"] == pytest.approx(-5.0)  # median of -4 and -6 in log10
    assert crystalline["n_measurements"] == 2
    assert crystalline["source"] == "10.1000/p1;10.1000/p2"  # the DOIs, not the prose of the cell
    assert t.loc[("Na3PS4", "glass"), "structure_family"] == "Sulfide"
    assert not t.loc[("Na3PS4", "glass-ceramic"), "temperature_reported"]  # "not stated": nominal 25 C
    assert t.loc[("Na3PS4", "glass-ceramic"), "temperature_c"] == 25.0
    assert set(res.table["dataset"]) == {"na_non_nasicon"}  # the Kang Na3PS4 yields to the hand-curated rows
    reasons = set(res.report["reason"])
    assert any("na_non_nasicon kept" in r for r in reasons)
    # 40 C is not room temperature: dropped with its reason, never read as 25 C
    assert ("NaTaOCl4" not in set(res.table["formula"])) and any("not room temperature" in r for r in reasons)


def test_phase_wording_and_family_labels_map_to_the_five_phases():
    from models.phase import normalize_phase, phase_from_description, phase_from_family

    assert phase_from_description("crystalline (not explicit; notes disorder)") == "unknown"
    assert phase_from_description("crystalline-amorphous heterostructure") == "glass-ceramic"
    assert phase_from_description("amorphous (viscoelastic glass)") == "glass"
    assert phase_from_description("crystalline (phase not stated)") == "crystalline"
    assert phase_from_family("NASICON") == "crystalline"
    assert phase_from_family("Glass") == "glass"
    assert phase_from_family("Halide") == "unknown"
    assert normalize_phase(" Glass_Ceramic ") == ("glass-ceramic", "")
    assert normalize_phase(None) == ("unknown", "")
    phase, error = normalize_phase("liquid")
    assert phase == "unknown" and "liquid" in error
