"""Cleaning rules of the voltage curation (MP 2019 dump), on small hand-made raw frames."""

from __future__ import annotations

import pandas as pd
import pytest

from featurize.composition import parse_formula
from models.data.voltage import COLUMNS, chemsys_without, curate_voltage


def pair(
    discharge: str,
    charge: str,
    ion: str,
    voltage: float,
    battery: str = "mp-1_X",
    hull: tuple[float, float] = (0.0, 0.0),
) -> dict[str, str]:
    return {
        "Unnamed: 0": "0", "battery_id": battery, "formula_charge": charge, "id_charge": "mp-2",
        "stability_charge": str(hull[0]), "formula_discharge": discharge, "id_discharge": "mp-3",
        "stability_discharge": str(hull[1]), "average_voltage": str(voltage), "capacity_grav": "150.0",
        "capacity_vol": "500", "energy_grav": "400", "energy_vol": "1500", "max_delta_volume": "0.05",
        "working_ion": ion,
    }  # fmt: skip


def curate(*rows: dict[str, str]):
    return curate_voltage(pd.DataFrame(list(rows), dtype=object))


def test_one_pair_gives_the_contract_columns_and_chemsys_without_the_ion():
    res = curate(pair("NaFePO4", "FePO4", "Na", 2.9, "mp-19226_Na"))
    assert list(res.table.columns) == COLUMNS
    r = res.table.iloc[0]
    assert r["formula"] == parse_formula("NaFePO4").formula
    assert r["formula_charge"] == parse_formula("FePO4").formula
    assert (r["working_ion"], r["battery_id"], r["chemsys"]) == ("Na", "mp-19226_Na", "Fe-O-P")
    assert r["average_voltage_v"] == pytest.approx(2.9)
    assert r["capacity_grav_mAh_g"] == pytest.approx(150.0) and r["max_delta_volume"] == pytest.approx(0.05)


def test_all_working_ions_are_kept():
    res = curate(
        pair("NaCoO2", "CoO2", "Na", 3.0),
        pair("LiCoO2", "CoO2", "Li", 3.9),
        pair("MgMn2O4", "Mn2O4", "Mg", 2.5),
    )
    assert sorted(res.table["working_ion"]) == ["Li", "Mg", "Na"]


@pytest.mark.parametrize("voltage", [0.0, -0.3, 6.01, 12.2, float("nan")])
def test_non_physical_voltages_are_dropped(voltage):
    res = curate(pair("NaCoO2", "CoO2", "Na", voltage), pair("LiCoO2", "CoO2", "Li", 3.9))
    assert list(res.table["working_ion"]) == ["Li"]
    assert res.report["reason"].iloc[0].startswith("non-physical average voltage")


def test_boundary_voltage_6v_is_kept():
    assert len(curate(pair("NaCoO2", "CoO2", "Na", 6.0)).table) == 1


def test_polymorph_pairs_keep_the_lowest_energy_above_hull():
    res = curate(
        pair("NaMnO2", "MnO2", "Na", 2.8, "mp-a_Na", hull=(0.05, 0.02)),
        pair("NaMnO2", "MnO2", "Na", 3.1, "mp-b_Na", hull=(0.0, 0.01)),
        pair("NaMnO2", "MnO2", "Na", 2.5, "mp-c_Na", hull=(0.2, 0.2)),
    )
    assert len(res.table) == 1
    r = res.table.iloc[0]
    assert r["battery_id"] == "mp-b_Na" and r["average_voltage_v"] == pytest.approx(3.1)
    assert r["n_polymorph_pairs"] == 3
    assert set(res.report["detail"]) == {"kept mp-b_Na"}


def test_bad_formulas_and_missing_ion_are_reported():
    res = curate(
        pair("NaXq2", "Xq2", "Na", 2.0),
        pair("LiCoO2", "Co(O2", "Li", 3.9),
        pair("CoO2", "CoO2", "Na", 1.0),
        pair("NaN", "N", "Na", 1.0),  # sodium nitride: a formula, not a missing value
    )
    assert list(res.table["formula"]) == [parse_formula("NaN").formula]
    assert sorted(res.report["reason"]) == [
        "unparseable charged formula",
        "unparseable discharged formula",
        "working ion not in the discharged formula",
    ]


def test_chemsys_without():
    assert chemsys_without("Li-Fe-P-O", "Li") == "Fe-O-P"
    assert chemsys_without("Na-O", "Na") == "O"
