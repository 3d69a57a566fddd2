"""Curation of the average-voltage table from ONE Materials Project dump (release 2019-12-03).

Pure functions: the raw DataFrame (read with keep_default_na=False) in, a CurationResult out. Each raw row
is one voltage pair (charged -> discharged end member) of an MP insertion electrode. Rules (documented with
counts in data/README.md):
1. both formulas go through featurize.composition; failures are dropped with the parser's message.
2. the working ion must be an element present in the discharged formula.
3. non-physical voltages (not finite, <= 0 V or > 6 V) are dropped.
4. the same (working ion, discharged formula, charged formula) from several polymorphs keeps the pair with
   the lowest summed energy above hull (stability_charge + stability_discharge): a formula-level model
   predicts the ground-state pair; the others are reported.
All working ions are kept (Na first-class, Li and others for transfer).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.data.formulas import canonicalize
from models.data.report import DROPPED, CurationResult, concat_reports, report_rows

TARGET = "average_voltage"
DATASET = "mp_2019_12_03"
VOLTAGE_RANGE_V = (0.0, 6.0)

COLUMNS = [
    "formula",
    "formula_charge",
    "working_ion",
    "average_voltage_v",
    "battery_id",
    "capacity_grav_mAh_g",
    "max_delta_volume",
    "chemsys",
    "id_discharge",
    "id_charge",
    "stability_discharge_eV_atom",
    "stability_charge_eV_atom",
    "structure_type",
    "n_polymorph_pairs",
    "formula_raw",
    "formula_charge_raw",
]


def standardize(raw: pd.DataFrame) -> pd.DataFrame:
    """Typed, renamed columns of the MP 2019 dump, one row per raw row."""
    num = lambda c: pd.to_numeric(raw[c], errors="coerce").to_numpy(dtype=float)  # noqa: E731
    return pd.DataFrame(
        {
            "raw_row": np.arange(len(raw)),
            "formula_raw": raw["formula_discharge"].astype(str).to_numpy(),
            "formula_charge_raw": raw["formula_charge"].astype(str).to_numpy(),
            "working_ion": raw["working_ion"].astype(str).str.strip().to_numpy(),
            "average_voltage_v": num("average_voltage"),
            "battery_id": raw["battery_id"].astype(str).str.strip().to_numpy(),
            "capacity_grav_mAh_g": num("capacity_grav"),
            "max_delta_volume": num("max_delta_volume"),
            "id_discharge": raw["id_discharge"].astype(str).str.strip().to_numpy(),
            "id_charge": raw["id_charge"].astype(str).str.strip().to_numpy(),
            "stability_discharge_eV_atom": num("stability_discharge"),
            "stability_charge_eV_atom": num("stability_charge"),
        }
    )


def chemsys_without(elements: str, ion: str) -> str:
    """ "-"-joined, alphabetically sorted elements other than the working ion ("Li-Fe-O", "Li" -> "Fe-O")."""
    return "-".join(sorted(e for e in elements.split("-") if e and e != ion))


def curate_voltage(raw: pd.DataFrame) -> CurationResult:
    """Build the voltage table (columns COLUMNS) and the report of every dropped raw row."""
    frame = standardize(raw)
    reports: list[pd.DataFrame] = []

    def drop(mask: pd.Series, reason: str, detail: str | pd.Series = "") -> None:
        nonlocal frame
        mask = mask.reindex(frame.index, fill_value=False).astype(bool)
        if mask.any():
            why = detail.reindex(frame.index)[mask] if isinstance(detail, pd.Series) else detail
            gone = frame[mask]
            reports.append(
                report_rows(TARGET, DATASET, gone["raw_row"], gone["formula_raw"], DROPPED, reason, why)
            )
        frame = frame[~mask]

    dis = canonicalize(frame["formula_raw"])
    cha = canonicalize(frame["formula_charge_raw"])
    frame = frame.assign(
        formula=dis["formula"],
        elements=dis["elements"],
        structure_type=dis["structure_type"],
        formula_charge=cha["formula"],
    )
    drop(dis["error"] != "", "unparseable discharged formula", dis["error"])
    drop(cha["error"] != "", "unparseable charged formula", cha["error"])

    has_ion = pd.Series(
        [ion in els.split("-") for ion, els in zip(frame["working_ion"], frame["elements"], strict=True)],
        index=frame.index,
    )
    drop(~has_ion, "working ion not in the discharged formula", frame["working_ion"])

    v = frame["average_voltage_v"]
    low, high = VOLTAGE_RANGE_V
    bad_v = ~np.isfinite(v) | (v <= low) | (v > high)
    drop(
        bad_v,
        f"non-physical average voltage (kept: {low:g} < V <= {high:g} V)",
        v.map(lambda x: f"{x:.4g} V"),
    )

    frame = frame.assign(
        chemsys=[chemsys_without(e, i) for e, i in zip(frame["elements"], frame["working_ion"], strict=True)],
        _hull=frame["stability_discharge_eV_atom"].fillna(np.inf)
        + frame["stability_charge_eV_atom"].fillna(np.inf),
    )
    keys = ["working_ion", "formula", "formula_charge"]
    frame = frame.sort_values([*keys, "_hull", "battery_id", "raw_row"], kind="stable")
    counts = frame.groupby(keys, sort=False)["raw_row"].transform("size")
    dup = frame.duplicated(keys, keep="first")
    kept_id = frame.groupby(keys, sort=False)["battery_id"].transform("first")
    drop(
        dup,
        "less stable polymorph pair of the same formulas (lowest energy above hull kept)",
        "kept " + kept_id,
    )
    frame = frame.assign(n_polymorph_pairs=counts.loc[frame.index].astype(int))

    table = frame[COLUMNS].sort_values(["working_ion", "chemsys", "formula", "formula_charge"], kind="stable")
    return CurationResult(table=table.reset_index(drop=True), report=concat_reports(reports))
