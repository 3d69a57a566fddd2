"""Ionic-conductivity curation: Na rows of Kang 2023 and Xu 2020, Li rows of OBELiX and Liverpool.

Pure functions: raw DataFrames (read with keep_default_na=False) in, a CurationResult out. The rules are
documented in data/README.md; every dropped or merged raw row is named in the report with its reason.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from models.data.formulas import canonicalize
from models.data.report import DROPPED, MERGED, CurationResult, concat_reports, report_rows

TARGET = "ionic_conductivity"
KANG_DOI = "10.1021/acs.jpcc.3c02908"
XU_DOI = "10.1088/2399-6528/ab92d8"
ROOM_TEMPERATURE_C = (15.0, 35.0)
NOMINAL_ROOM_TEMPERATURE_C = 25.0

COLUMNS = [
    "formula",
    "log10_sigma_s_cm",
    "mobile_ion",
    "structure_family",
    "temperature_c",
    "temperature_reported",
    "censored",
    "source",
    "dataset",
    "obelix_split",
    "n_measurements",
    "formula_raw",
]

# Family labels differ between the sources (case, plural, spelling); one spelling per family.
_FAMILY_SYNONYMS = {
    "antiperovskite": "Anti-perovskite",
    "anti-perovskite": "Anti-perovskite",
    "argyrodite": "Argyrodite",
    "argyrodites": "Argyrodite",
    "garnet": "Garnet",
    "garnet-like": "Garnet",
    "perovskite": "Perovskite",
    "perovskites": "Perovskite",
    "nasicon": "NASICON",
    "lisicon": "LISICON",
    "thio-lisicon": "Thio-LISICON",
    "lgps": "LGPS",
    "lipon": "LiPON",
    "halide": "Halide",
    "halides": "Halide",
    "li-halide": "Halide",
    "chlorides": "Halide",
    "cholorides": "Halide",
    "fluorides": "Halide",
    "nitride": "Nitride",
    "nitrides": "Nitride",
    "sulfides": "Sulfide",
    "oxides": "Oxide",
    "glass": "Glass",
    "glass-ceramic": "Glass-ceramic",
    "other": "Other",
    "": "unknown",
}

# Standardised per-source frame: one row per raw row, before parsing and merging.
_STD = [
    "raw_row",
    "formula_raw",
    "sigma_text",
    "mobile_ion",
    "structure_family",
    "temperature_c",
    "temperature_reported",
    "source",
    "dataset",
    "report_dataset",
    "obelix_split",
]


def normalize_family(label: str) -> str:
    """One spelling per structure family across the sources; unknown labels are kept as written."""
    key = label.strip().lower()
    return _FAMILY_SYNONYMS.get(key, label.strip())


def parse_sigma(text: object) -> tuple[float, bool, str]:
    """Conductivity cell -> (sigma in S/cm, censored, error). "<1E-10" is an upper bound (censored)."""
    raw = str(text).strip()
    censored = raw.startswith("<")
    number = raw.lstrip("<").strip()
    try:
        value = float(number)
    except ValueError:
        return math.nan, censored, f"conductivity {raw!r} is not a number"
    if not math.isfinite(value) or value <= 0:
        return math.nan, censored, f"conductivity {raw!r} is not a positive finite value"
    return value, censored, ""


def _std_frame(raw: pd.DataFrame, **columns: Any) -> pd.DataFrame:
    out = pd.DataFrame({"raw_row": np.arange(len(raw))}, index=raw.index)
    for name, value in columns.items():
        out[name] = value
    return out[_STD].reset_index(drop=True)


def standardize_kang(kang: pd.DataFrame) -> pd.DataFrame:
    """Kang 2023: per-row DOI where given, else the index of Kang's own reference list."""
    doi = kang["Source"].astype(str).str.strip()
    ref = "kang2023:ref" + kang["Reference"].astype(str).str.strip()
    return _std_frame(
        kang,
        formula_raw=kang["Formula"].astype(str),
        sigma_text=kang["Ionic conductivity (S/cm)"].astype(str),
        mobile_ion="",
        structure_family=kang["Type"].astype(str).map(normalize_family),
        temperature_c=NOMINAL_ROOM_TEMPERATURE_C,
        temperature_reported=False,
        source=doi.where(doi != "", ref),
        dataset="kang2023",
        report_dataset="kang2023",
        obelix_split="",
    )


def standardize_xu(train: pd.DataFrame, test: pd.DataFrame) -> pd.DataFrame:
    """Xu 2020: the training file has no per-row paper; the test file names the paper (e.g. "T6")."""
    parts = []
    for frame, name, source in (
        (train, "xu2020/TrainingData", pd.Series(XU_DOI, index=train.index)),
        (test, "xu2020/TestData_NaLi", "xu2020:" + test["Paper"].astype(str).str.strip()),
    ):
        parts.append(
            _std_frame(
                frame,
                formula_raw=frame["Formula"].astype(str),
                sigma_text=frame["S"].astype(str),
                mobile_ion="",
                structure_family="NASICON",
                temperature_c=NOMINAL_ROOM_TEMPERATURE_C,
                temperature_reported=False,
                source=source,
                dataset="xu2020",
                report_dataset=name,
                obelix_split="",
            )
        )
    return pd.concat(parts, ignore_index=True)


def standardize_obelix(all_rows: pd.DataFrame, train: pd.DataFrame, test: pd.DataFrame) -> pd.DataFrame:
    """OBELiX all.csv with the official split taken from train.csv / test.csv membership of the ID."""
    train_ids, test_ids = set(train["ID"].astype(str)), set(test["ID"].astype(str))
    ids = all_rows["ID"].astype(str)
    split = ids.map(lambda i: "train" if i in train_ids else ("test" if i in test_ids else ""))
    doi = all_rows["DOI"].astype(str).str.strip()
    return _std_frame(
        all_rows,
        formula_raw=all_rows["Reduced Composition"].astype(str),
        sigma_text=all_rows["Ionic conductivity (S cm-1)"].astype(str),
        mobile_ion="Li",
        structure_family=all_rows["Family"].astype(str).map(normalize_family),
        temperature_c=NOMINAL_ROOM_TEMPERATURE_C,
        temperature_reported=False,
        source=doi.where(doi != "", "obelix:" + ids),
        dataset="obelix",
        report_dataset="obelix",
        obelix_split=split,
    )


def standardize_liverpool(liverpool: pd.DataFrame) -> pd.DataFrame:
    """Liverpool Ionics Dataset: temperature column in degrees C (see data/README.md for the evidence)."""
    temperature = pd.to_numeric(liverpool["temperature"], errors="coerce")
    doi = liverpool["source"].astype(str).str.strip()
    return _std_frame(
        liverpool,
        formula_raw=liverpool["composition"].astype(str),
        sigma_text=liverpool["target"].astype(str),
        mobile_ion="Li",
        structure_family=liverpool["family"].astype(str).map(normalize_family),
        temperature_c=temperature,
        temperature_reported=True,
        source=doi.where(doi != "", "liverpool:" + liverpool["ID"].astype(str)),
        dataset="liverpool",
        report_dataset="liverpool",
        obelix_split="",
    )


def _drop(
    frame: pd.DataFrame,
    mask: pd.Series,
    reason: str,
    reports: list[pd.DataFrame],
    detail: str | pd.Series = "",
) -> pd.DataFrame:
    """Remove the masked rows and report each with its reason (and per-row detail)."""
    mask = mask.reindex(frame.index, fill_value=False).astype(bool)
    if mask.any():
        gone = frame[mask]
        for name, block in gone.groupby("report_dataset", sort=False):
            sub = detail.loc[block.index] if isinstance(detail, pd.Series) else detail
            reports.append(
                report_rows(TARGET, str(name), block["raw_row"], block["formula_raw"], DROPPED, reason, sub)
            )
    return frame[~mask]


def _assign_mobile_ion(frame: pd.DataFrame, reports: list[pd.DataFrame]) -> pd.DataFrame:
    """Na sets keep Na conductors only; Li sets keep Li-containing rows only."""
    els = frame["elements"].str.split("-")
    has_na = els.map(lambda e: "Na" in e)
    has_li = els.map(lambda e: "Li" in e)
    na_set = frame["dataset"].isin(["kang2023", "xu2020"])
    frame = frame.assign(mobile_ion=frame["mobile_ion"].where(~na_set, "Na"))
    frame = _drop(
        frame,
        na_set & has_li,
        "Li conductor in a Na source: out of scope (Li rows come from OBELiX and Liverpool)",
        reports,
    )
    frame = _drop(frame, na_set & ~has_na, "no Na in the formula of a Na source", reports)
    return _drop(frame, ~na_set & ~has_li, "no Li in the formula of a Li-conductor set", reports)


def _merge_within(frame: pd.DataFrame, reports: list[pd.DataFrame]) -> pd.DataFrame:
    """One row per (dataset, formula, mobile ion): median log10 sigma of the measured values.

    Censored duplicates only bound the value: when a formula has measured values, its censored rows are
    dropped (reported); when all are censored, the tightest (smallest) bound is kept, still censored.
    The kept row carries every source of the rows used (";"-joined) and their median temperature.
    """
    keys = ["dataset", "formula", "mobile_ion", "obelix_split"]
    frame = frame.sort_values([*keys, "report_dataset", "raw_row"], kind="stable")
    group = frame.groupby(keys, sort=False).ngroup()
    measured_any = (~frame["censored"]).groupby(group).transform("any")
    used = ~frame["censored"] | ~measured_any
    u = frame[used]
    ug = group[used]
    value = (
        u["log10_sigma_s_cm"]
        .groupby(ug)
        .median()
        .where(measured_any.groupby(group).first(), u["log10_sigma_s_cm"].groupby(ug).min())
    )
    sources = u["source"].groupby(ug).agg(lambda x: ";".join(sorted(set(x))))
    temperature = u["temperature_c"].astype(float).groupby(ug).median()
    n_used = ug.groupby(ug).size()
    n_all = group.groupby(group).size()

    rep_mask = used & ~(group.where(used).duplicated(keep="first"))
    rep = frame[rep_mask].copy()
    rep_group = group[rep_mask]
    rep["log10_sigma_s_cm"] = value.loc[rep_group].to_numpy()
    rep["censored"] = ~measured_any[rep_mask]
    rep["source"] = sources.loc[rep_group].to_numpy()
    rep["temperature_c"] = temperature.loc[rep_group].to_numpy()
    rep["n_measurements"] = n_used.loc[rep_group].to_numpy()

    others = frame[~rep_mask]
    og = group[~rep_mask]
    detail = pd.Series(
        [f"{n_all[g]} rows -> 1 ({n_used[g]} used)" for g in og], index=others.index, dtype=object
    )
    for mask, reason in (
        (
            others["censored"] & measured_any[~rep_mask],
            "censored duplicate of a measured formula: measured value used",
        ),
        (
            others["censored"] & ~measured_any[~rep_mask],
            "duplicate censored formula: tightest upper bound kept",
        ),
        (~others["censored"], "duplicate formula within the source: merged by median log10 sigma"),
    ):
        for name, block in others[mask].groupby("report_dataset", sort=False):
            reports.append(
                report_rows(
                    TARGET,
                    str(name),
                    block["raw_row"],
                    block["formula_raw"],
                    MERGED,
                    reason,
                    detail[block.index],
                )
            )
    return rep


def _drop_cross_source(
    frame: pd.DataFrame, winner: str, loser: str, why: str, reports: list[pd.DataFrame]
) -> pd.DataFrame:
    win = set(frame.loc[frame["dataset"] == winner, "formula"])
    mask = (frame["dataset"] == loser) & frame["formula"].isin(win)
    return _drop(frame, mask, f"formula also in {winner}: {winner} kept ({why})", reports)


def curate_conductivity(
    kang: pd.DataFrame,
    xu_train: pd.DataFrame,
    xu_test: pd.DataFrame,
    obelix_all: pd.DataFrame,
    obelix_train: pd.DataFrame,
    obelix_test: pd.DataFrame,
    liverpool: pd.DataFrame,
) -> CurationResult:
    """Build the conductivity table (columns COLUMNS) and the report of every dropped/merged raw row."""
    reports: list[pd.DataFrame] = []
    frame = pd.concat(
        [
            standardize_kang(kang),
            standardize_xu(xu_train, xu_test),
            standardize_obelix(obelix_all, obelix_train, obelix_test),
            standardize_liverpool(liverpool),
        ],
        ignore_index=True,
    )
    parsed = canonicalize(frame["formula_raw"])
    frame = frame.join(parsed[["formula", "elements"]])
    frame = _drop(frame, parsed["error"] != "", "unparseable formula", reports, parsed["error"])

    sigma = frame["sigma_text"].map(parse_sigma)
    frame = frame.assign(
        sigma=sigma.map(lambda t: t[0]),
        censored=sigma.map(lambda t: t[1]),
        sigma_error=sigma.map(lambda t: t[2]),
    )
    frame = _drop(
        frame, frame["sigma_error"] != "", "conductivity not a positive number", reports, frame["sigma_error"]
    )
    frame = frame.assign(log10_sigma_s_cm=np.log10(frame["sigma"].astype(float)))

    temp = frame["temperature_c"].astype(float)
    low, high = ROOM_TEMPERATURE_C
    outside = temp.isna() | (temp < low) | (temp > high)
    frame = _drop(
        frame,
        outside,
        f"not room temperature (outside {low:g}-{high:g} C) or no temperature",
        reports,
        temp.map(lambda t: "no temperature" if pd.isna(t) else f"{t:g} C"),
    )

    frame = _assign_mobile_ion(frame, reports)
    frame = _merge_within(frame, reports)
    frame = _drop_cross_source(
        frame, "kang2023", "xu2020", "the later, larger compilation with per-row references", reports
    )
    frame = _drop_cross_source(
        frame, "obelix", "liverpool", "OBELiX's official train/test split must stay intact", reports
    )
    table = (
        frame[COLUMNS].sort_values(["mobile_ion", "dataset", "formula"], kind="stable").reset_index(drop=True)
    )
    table = table.astype(
        {"censored": bool, "temperature_reported": bool, "n_measurements": int, "log10_sigma_s_cm": float}
    )
    return CurationResult(table=table, report=concat_reports(reports))
