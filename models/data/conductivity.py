"""Ionic-conductivity curation: Na rows of Kang 2023, Xu 2020 and the hand-curated Na non-NASICON set
(halides, oxyhalides, sulfides, selenides, hydroborates, beta-alumina), Li rows of OBELiX and Liverpool.

Pure functions: raw DataFrames (read with keep_default_na=False) in, a CurationResult out. The rules are
documented in data/README.md; every dropped or merged raw row is named in the report with its reason.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd

from models.data.formulas import canonicalize
from models.data.report import DROPPED, MERGED, CurationResult, concat_reports, report_rows
from models.phase import DEFAULT_PHASE, phase_from_description, phase_from_family

TARGET = "ionic_conductivity"
KANG_DOI = "10.1021/acs.jpcc.3c02908"
XU_DOI = "10.1088/2399-6528/ab92d8"
ROOM_TEMPERATURE_C = (15.0, 35.0)
NA_NON_NASICON = "na_non_nasicon"
PHASE_STATED_DATASETS = (NA_NON_NASICON,)
NOMINAL_ROOM_TEMPERATURE_C = 25.0

COLUMNS = [
    "formula",
    "log10_sigma_s_cm",
    "mobile_ion",
    "structure_family",
    "phase",
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
    "oxyhalide": "Oxyhalide",
    "selenide": "Selenide",
    "sulfide": "Sulfide",
    "borohydride": "Hydroborate",
    "hydroborate": "Hydroborate",
    "beta_alumina": "Beta-alumina",
    "beta-alumina": "Beta-alumina",
    "": "unknown",
}

# Standardised per-source frame: one row per raw row, before parsing and merging.
_STD = [
    "raw_row",
    "formula_raw",
    "sigma_text",
    "mobile_ion",
    "structure_family",
    "phase",
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
    if "phase" not in columns:  # sources without a phase column: the phase their family label implies
        out["phase"] = out["structure_family"].astype(str).map(phase_from_family)
    return out[_STD].reset_index(drop=True)


_DOI = re.compile(r"DOI:\s*(10\.\d{4,9}/[^\s;,()]+)", re.IGNORECASE)
_ARXIV = re.compile(r"arXiv:\s*(\d{4}\.\d{4,5})", re.IGNORECASE)
_PII = re.compile(r"PII\s+(S[0-9A-Z()\-]+)")


def source_id(text: str) -> str:
    """The citable id of a hand-curated row's ``source`` cell: the DOI it names (the last one when a thesis
    names the article inside it), else arXiv id, else Elsevier PII, else "ref:<first author>"."""
    dois: list[str] = _DOI.findall(text)
    if dois:
        return dois[-1].rstrip(".")
    for pattern, prefix in ((_ARXIV, "arXiv:"), (_PII, "PII:")):
        found = pattern.search(text)
        if found:
            return prefix + found.group(1)
    if text.startswith("Kang, Kim & Min"):
        return KANG_DOI
    first = re.split(r"[,;(' ]", text.strip(), maxsplit=1)[0]
    return f"ref:{first or 'unnamed'}"


def _temperature_cell(text: str) -> tuple[float, bool]:
    """(temperature in C, reported) of a hand-curated cell: a number is reported; the source's own words
    "RT", "ambient", "not stated" (in a set of room-temperature values) are nominal 25 C, not reported."""
    try:
        return float(text), True
    except ValueError:
        return NOMINAL_ROOM_TEMPERATURE_C, False


def standardize_na_non_nasicon(raw: pd.DataFrame) -> pd.DataFrame:
    """The hand-curated Na halide/oxyhalide/sulfide/... set: phase from the source's wording, DOI source."""
    temps = raw["temperature_C"].astype(str).str.strip().map(_temperature_cell)
    return _std_frame(
        raw,
        formula_raw=raw["formula"].astype(str),
        sigma_text=raw["sigma_S_cm"].astype(str),
        mobile_ion="Na",
        structure_family=raw["family"].astype(str).map(normalize_family),
        phase=raw["crystalline_or_amorphous"].astype(str).map(phase_from_description),
        temperature_c=temps.map(lambda t: t[0]),
        temperature_reported=temps.map(lambda t: t[1]),
        source=raw["source"].astype(str).map(source_id),
        dataset="na_non_nasicon",
        report_dataset="na_non_nasicon",
        obelix_split="",
    )


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
    na_set = frame["dataset"].isin(["kang2023", "xu2020", "na_non_nasicon"])
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
    """One row per (dataset, formula, mobile ion): median log10 sigma of the measured values; in the
    hand-curated Na set (which states the phase per row) one row per (formula, phase).

    Censored duplicates only bound the value: when a formula has measured values, its censored rows are
    dropped (reported); when all are censored, the tightest (smallest) bound is kept, still censored.
    The kept row carries every source of the rows used (";"-joined) and their median temperature.
    """
    # only the hand-curated set states a phase per row; elsewhere it is implied by a family label, which
    # sources spell differently for one material (a missing label must not split a formula in two)
    frame = frame.assign(merge_phase=frame["phase"].where(frame["dataset"].isin(PHASE_STATED_DATASETS), ""))
    keys = ["dataset", "formula", "mobile_ion", "merge_phase", "obelix_split"]
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
    phases = u["phase"].groupby(ug).agg(lambda x: x.iloc[0] if x.nunique() == 1 else DEFAULT_PHASE)
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
    rep["phase"] = phases.loc[rep_group].to_numpy()

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
    na_non_nasicon: pd.DataFrame | None = None,
) -> CurationResult:
    """Build the conductivity table (columns COLUMNS) and the report of every dropped/merged raw row."""
    reports: list[pd.DataFrame] = []
    frame = pd.concat(
        [
            standardize_kang(kang),
            standardize_xu(xu_train, xu_test),
            standardize_obelix(obelix_all, obelix_train, obelix_test),
            standardize_liverpool(liverpool),
            *([] if na_non_nasicon is None else [standardize_na_non_nasicon(na_non_nasicon)]),
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
        frame,
        "na_non_nasicon",
        "kang2023",
        "hand-curated with the source's quote and phase",
        reports,
    )
    frame = _drop_cross_source(
        frame, "kang2023", "xu2020", "the later, larger compilation with per-row references", reports
    )
    frame = _drop_cross_source(
        frame, "obelix", "liverpool", "OBELiX's official train/test split must stay intact", reports
    )
    table = (
        frame[COLUMNS]
        .sort_values(["mobile_ion", "dataset", "formula", "phase"], kind="stable")
        .reset_index(drop=True)
    )
    table = table.astype(
        {"censored": bool, "temperature_reported": bool, "n_measurements": int, "log10_sigma_s_cm": float}
    )
    return CurationResult(table=table, report=concat_reports(reports))
