"""Curation of the capacity-retention table from the Na layered-oxide cathode database (Guo et al. 2024).

Pure functions: the raw DataFrame (read with keep_default_na=False) in, a CurationResult out. Rules, in
order (documented with counts in data/README.md):
1. numeric cells that are not numbers -> dropped; formulas go through featurize.composition (a "C-"
   carbon-coating prefix is recorded in `coating` and not parsed); formulas without O are not oxides.
2. rate-performance rows (capacity vs current) are not retention -> dropped.
3. retention split over rows: a cycling row with a capacity at cycle N > 1 and no retention, whose material,
   DOI and conditions also have exactly one first-cycle capacity, gets retention = 100 * C_N / C_1
   (`retention_derived`); a reported retention for the same conditions wins over a derived one.
4. missing voltage window / current on a retention row are filled from sibling rows of the same material
   and DOI when the siblings agree on one value (`window_source`, `current_source`); else left missing.
5. impossible values -> dropped: retention > 105 % or <= 0, cycles < 1, lower >= upper cut-off, currents
   <= 0; anode-range windows (lower cut-off < 0.5 V) are not cathode tests -> dropped.
6. duplicates (same material, polymorph, DOI, cycles, current, window, sintering) -> one row (median).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.data.formulas import canonicalize
from models.data.report import DROPPED, FILLED, MERGED, CurationResult, concat_reports, report_rows

TARGET = "capacity_retention"
DATASET = "guo2024_na_layered_oxides"
RETENTION_TOLERANCE_PCT = 5.0
MIN_CATHODE_LOWER_CUTOFF_V = 0.5

COLUMNS = [
    "formula",
    "retention_pct",
    "cycles",
    "current_mA_g",
    "c_rate",
    "voltage_low_V",
    "voltage_high_V",
    "sintering_temperature_C",
    "sintering_time_h",
    "structure_type",
    "coating",
    "doi",
    "year",
    "retention_derived",
    "current_source",
    "window_source",
    "n_measurements",
    "formula_raw",
]

_NUMERIC = {
    "Cycle": "cycles",
    "Capacity": "capacity_mAh_g",
    "Retention": "retention_pct",
    "Current: mAg-1": "current_mA_g",
    "Current: C": "c_rate",
    "Voltage lower limit": "voltage_low_V",
    "Voltage upper limit": "voltage_high_V",
    "Sintering temperature": "sintering_temperature_C",
    "Sintering time": "sintering_time_h",
}
_CONDITIONS = [
    "current_mA_g",
    "c_rate",
    "voltage_low_V",
    "voltage_high_V",
    "sintering_temperature_C",
    "sintering_time_h",
]
COATING_PREFIX = "C-"
_MISSING = -1.0  # stands for NaN inside group keys (NaN never equals NaN); all real values are >= 0


class _Pipeline:
    """Holds the working frame and the report while the rules run in order."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.reports: list[pd.DataFrame] = []

    def report(self, rows: pd.DataFrame, action: str, reason: str, detail: str | pd.Series = "") -> None:
        if len(rows):
            self.reports.append(
                report_rows(TARGET, DATASET, rows["raw_row"], rows["formula_raw"], action, reason, detail)
            )

    def drop(self, mask: pd.Series | np.ndarray, reason: str, detail: str | pd.Series = "") -> None:
        mask = pd.Series(mask, index=self.frame.index).fillna(False).astype(bool)
        gone = self.frame[mask]
        why = detail.reindex(self.frame.index)[mask] if isinstance(detail, pd.Series) else detail
        self.report(gone, DROPPED, reason, why)
        self.frame = self.frame[~mask]


def _key(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    return frame[columns].fillna(_MISSING)


def standardize(raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Typed columns; second value names the first non-numeric cell of each row ("" when all are numeric).

    A "C-" prefix on the name means carbon-coated (C-NaCrO2): the coating is recorded in `coating` and
    removed from the text that is parsed, so the carbon does not enter the composition.
    """
    name = raw["Name"].astype(str).reset_index(drop=True)
    coated = name.str.strip().str.startswith(COATING_PREFIX)
    out = pd.DataFrame(
        {
            "raw_row": np.arange(len(raw)),
            "doi": raw["Doi"].astype(str).str.strip().to_numpy(),
            "year": pd.to_numeric(raw["Year"], errors="coerce").to_numpy(),
            "formula_raw": name,
            "formula_text": name.str.strip().where(~coated, name.str.strip().str[len(COATING_PREFIX) :]),
            "coating": np.where(coated, "C", ""),
            "category": raw["Category"].astype(str).str.strip().to_numpy(),
        }
    )
    problems = pd.Series("", index=out.index)
    for src, dst in _NUMERIC.items():
        text = raw[src].astype(str).str.strip().reset_index(drop=True)
        value = pd.to_numeric(text.where(text != ""), errors="coerce")
        bad = (text != "") & value.isna() & (problems == "")
        problems[bad] = src + " " + text[bad].map(repr) + " is not a number"
        out[dst] = value.astype(float)
    return out, problems


def _derive_split_retention(p: _Pipeline) -> None:
    """Rule 3: retention from a capacity at cycle N and the first-cycle capacity of the same conditions."""
    f = p.frame
    group_cols = ["doi", "formula_raw", *_CONDITIONS]
    has_ret = f["retention_pct"].notna()
    cap_n = f["capacity_mAh_g"].notna() & ~has_ret & (f["cycles"] > 1)
    first = f["capacity_mAh_g"].notna() & ~has_ret & (f["cycles"] == 1)

    keyed = _key(f, group_cols)
    base = keyed[first].assign(c1=f.loc[first, "capacity_mAh_g"])
    base_stats = base.groupby(group_cols, sort=False)["c1"].agg(["nunique", "first"]).reset_index()
    unique_base = base_stats[base_stats["nunique"] == 1].drop(columns="nunique")

    cand = keyed[cap_n].assign(_idx=f.index[cap_n], cycles=f.loc[cap_n, "cycles"])
    cand = cand.merge(unique_base, on=group_cols, how="left").set_index("_idx")
    matched = cand["first"].notna()

    reported = _key(f[has_ret], [*group_cols]).assign(cycles=f.loc[has_ret, "cycles"])
    reported_keys = set(map(tuple, reported[[*group_cols, "cycles"]].to_numpy().tolist()))
    cand_keys = cand[[*group_cols, "cycles"]].to_numpy().tolist()
    superseded = pd.Series([tuple(k) in reported_keys for k in cand_keys], index=cand.index)

    derive_idx = cand.index[matched & ~superseded]
    p.frame.loc[derive_idx, "retention_pct"] = (
        100.0 * f.loc[derive_idx, "capacity_mAh_g"] / cand.loc[derive_idx, "first"].astype(float)
    )
    p.frame.loc[derive_idx, "retention_derived"] = True
    p.report(
        p.frame.loc[derive_idx],
        FILLED,
        "retention derived as 100 * capacity(N) / capacity(1) of the same conditions",
    )

    p.drop(
        p.frame.index.isin(cand.index[superseded]),
        "capacity at cycle N: the same conditions carry a reported retention, which is used",
    )
    p.drop(
        p.frame.index.isin(cand.index[~matched & ~superseded]),
        "capacity at cycle N without retention and without one first-cycle capacity of the same conditions",
    )
    f = p.frame
    p.drop(
        first.reindex(f.index, fill_value=False),
        "first-cycle capacity row (reference for derived retention, not a target)",
    )
    f = p.frame
    p.drop(f["retention_pct"].isna(), "cycling row without retention or capacity")


def _fill_from_siblings(
    p: _Pipeline, siblings: pd.DataFrame, columns: list[str], source_col: str, what: str
) -> None:
    """Rule 4: fill missing `columns` from sibling rows when the siblings agree on exactly one value.

    The current is missing when neither mA/g nor C-rate is given; the window when either cut-off is.
    Siblings are looked up at the same material, DOI and cycle number first (current only), then at the
    same material and DOI.
    """
    current = what == "current"
    missing = p.frame[columns].isna().all(axis=1) if current else p.frame[columns].isna().any(axis=1)
    source = pd.Series(np.where(missing, "missing", "reported"), index=p.frame.index, dtype=object)
    levels: list[tuple[list[str], str]] = [(["doi", "formula_raw"], "same material and DOI")]
    if current:
        levels.insert(0, (["doi", "formula_raw", "cycles"], "same material, DOI and cycle number"))
    for keys, label in levels:
        todo = p.frame[source == "missing"]
        if todo.empty:
            break
        known = siblings.dropna(subset=columns, how="all" if current else "any")[
            keys + columns
        ].drop_duplicates()
        single = known[known.groupby(keys, sort=False)[keys[0]].transform("size") == 1]
        hit = todo[keys].reset_index().merge(single, on=keys, how="inner").set_index("index")
        if hit.empty:
            continue
        for c in columns:
            p.frame.loc[hit.index, c] = hit[c]
        source[hit.index] = f"filled: {label}"
        p.report(p.frame.loc[hit.index], FILLED, f"{what} filled from sibling rows of the {label}")
    p.frame[source_col] = source


def _drop_impossible(p: _Pipeline) -> None:
    f = p.frame
    p.drop(
        f["retention_pct"] > 100.0 + RETENTION_TOLERANCE_PCT,
        f"retention above 100 % + {RETENTION_TOLERANCE_PCT:g} % tolerance",
    )
    f = p.frame
    p.drop(f["retention_pct"] <= 0, "retention <= 0 %")
    f = p.frame
    p.drop(f["cycles"].isna() | (f["cycles"] < 1), "cycle number missing or < 1")
    f = p.frame
    p.drop(f["voltage_low_V"] >= f["voltage_high_V"], "lower voltage cut-off >= upper cut-off")
    f = p.frame
    p.drop((f["current_mA_g"] <= 0) | (f["c_rate"] <= 0), "current <= 0")
    f = p.frame
    p.drop(
        f["voltage_low_V"] < MIN_CATHODE_LOWER_CUTOFF_V,
        f"anode-range window (lower cut-off < {MIN_CATHODE_LOWER_CUTOFF_V:g} V): not a cathode cycling test",
    )


def _merge_duplicates(p: _Pipeline) -> pd.DataFrame:
    """Rule 6: one row per material, polymorph, DOI, cycles and conditions; median retention."""
    keys = ["formula", "structure_type", "doi", "cycles", *_CONDITIONS]
    f = p.frame.copy()
    f["_group"] = _key(f, keys).groupby(keys, sort=False).ngroup().to_numpy()
    by = f.groupby("_group", sort=False)
    median = by["retention_pct"].median()
    size = by.size()
    derived = by["retention_derived"].all()
    first = f.drop_duplicates("_group", keep="first").copy()
    first["retention_pct"] = median.loc[first["_group"]].to_numpy()
    first["n_measurements"] = size.loc[first["_group"]].to_numpy()
    first["retention_derived"] = derived.loc[first["_group"]].to_numpy()
    dups = f[f.duplicated("_group", keep="first")]
    p.report(
        dups,
        MERGED,
        "duplicate of the same material, DOI and conditions: median retention",
        dups["_group"].map(size).astype(str) + " rows -> 1",
    )
    return first


def _fill_structure_type(p: _Pipeline) -> None:
    """A row without a polymorph prefix takes the one its DOI names for the same formula, if only one."""
    f = p.frame
    named = (
        f[f["structure_type"] != ""]
        .groupby(["doi", "formula"])["structure_type"]
        .agg(lambda s: s.iloc[0] if s.nunique() == 1 else "")
    )
    idx = f.index[f["structure_type"] == ""]
    fill = pd.Series(
        [named.get((d, fm), "") for d, fm in zip(f.loc[idx, "doi"], f.loc[idx, "formula"], strict=True)],
        index=idx,
    )
    fill = fill[fill != ""]
    p.frame.loc[fill.index, "structure_type"] = fill
    p.report(
        p.frame.loc[fill.index],
        FILLED,
        "structure type taken from the same formula named with a prefix in the same DOI",
    )


def curate_retention(raw: pd.DataFrame) -> CurationResult:
    """Build the retention table (columns COLUMNS) and the report of every dropped/merged/filled raw row."""
    frame, problems = standardize(raw)
    frame["retention_derived"] = False
    p = _Pipeline(frame)
    p.drop(problems != "", "non-numeric value in a numeric column", problems)

    parsed = canonicalize(p.frame["formula_text"])
    p.frame = p.frame.join(parsed[["formula", "structure_type", "elements"]])
    p.drop(parsed["error"] != "", "unparseable formula", parsed["error"])
    p.drop(
        ~p.frame["elements"].str.split("-").map(lambda e: "O" in e),
        "no oxygen in the formula: not a layered oxide (truncated name or another class, e.g. NaFeF3)",
    )

    p.drop(
        p.frame["category"] == "Rate performance",
        "rate-performance row: capacity vs current, not a retention",
    )
    all_cycling = p.frame.copy()
    _derive_split_retention(p)
    _fill_from_siblings(
        p, all_cycling, ["voltage_low_V", "voltage_high_V"], "window_source", "voltage window"
    )
    _fill_from_siblings(p, all_cycling, ["current_mA_g", "c_rate"], "current_source", "current")
    _drop_impossible(p)
    _fill_structure_type(p)
    table = _merge_duplicates(p)
    table = table[COLUMNS].sort_values(["formula", "doi", "cycles"], kind="stable").reset_index(drop=True)
    table = table.astype({"retention_derived": bool, "n_measurements": int, "year": int})
    return CurationResult(table=table, report=concat_reports(p.reports))
