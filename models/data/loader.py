"""File I/O for the data sets: raw files in, curated tables out and back (the only module that touches disk).

Every CSV is read with keep_default_na=False: the formula "NaN" is sodium nitride, not a missing value, and
an empty cell stays an empty string until the curation functions type it explicitly.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from models.data.conductivity import curate_conductivity
from models.data.report import CurationResult, concat_reports, summarize_report
from models.data.retention import curate_retention
from models.data.voltage import curate_voltage
from models.targets import TargetName, get_target

RAW_FILES: dict[str, str] = {
    "kang2023": "raw/conductivity/kang2023/Ionic_conductivity_training_dataset.csv",
    "xu2020_train": "raw/conductivity/xu2020_nasicon/TrainingData.csv",
    "xu2020_test": "raw/conductivity/xu2020_nasicon/TestData_NaLi.csv",
    "obelix_all": "raw/conductivity/obelix/all.csv",
    "obelix_train": "raw/conductivity/obelix/train.csv",
    "obelix_test": "raw/conductivity/obelix/test.csv",
    "liverpool": "raw/conductivity/obelix/LiIonDatabase.csv",
    "na_non_nasicon": "raw/conductivity/na_non_nasicon/na_non_nasicon_conductivity.csv",
    "na_non_nasicon_extra": "raw/conductivity/na_non_nasicon_extra/na_non_nasicon_extra_conductivity.csv",
    "retention": "raw/retention/na_layered_oxide_cathodes/cathode_mats230911.csv",
    "voltage": "raw/voltage/mp_insertion_electrodes/mp_batteries_2019.csv",
}
CURATED_DIR = "curated"
REPORT_FILE = "curation_report.csv"
SUMMARY_FILE = "curation_summary.csv"

# Columns that must come back as strings even when a CSV cell looks like a number or is empty.
_TEXT_COLUMNS = {
    "formula",
    "formula_raw",
    "formula_charge",
    "formula_charge_raw",
    "source",
    "dataset",
    "obelix_split",
    "structure_family",
    "phase",
    "structure_type",
    "coating",
    "doi",
    "mobile_ion",
    "working_ion",
    "battery_id",
    "chemsys",
    "id_charge",
    "id_discharge",
    "current_source",
    "window_source",
}


@dataclass(frozen=True)
class Curated:
    """All curated tables and the combined report."""

    tables: dict[TargetName, pd.DataFrame]
    report: pd.DataFrame

    @property
    def summary(self) -> pd.DataFrame:
        return summarize_report(self.report)


def read_raw_csv(path: Path) -> pd.DataFrame:
    """A raw CSV as strings, nothing turned into NaN (utf-8 with or without BOM)."""
    if not path.is_file():
        raise FileNotFoundError(f"raw data file {path} not found (expected under the data directory)")
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig")


def _raw(data_dir: Path, key: str) -> pd.DataFrame:
    return read_raw_csv(data_dir / RAW_FILES[key])


def na_non_nasicon_raw(data_dir: Path) -> pd.DataFrame:
    """The hand-curated Na beyond-NASICON rows: the shared reference set and the rows curated on top of it
    (same columns, one row per sourced value); both are the ``na_non_nasicon`` dataset."""
    parts = [_raw(data_dir, "na_non_nasicon"), _raw(data_dir, "na_non_nasicon_extra")]
    if list(parts[0].columns) != list(parts[1].columns):
        raise ValueError(
            f"{RAW_FILES['na_non_nasicon_extra']} must have the columns of {RAW_FILES['na_non_nasicon']}: "
            f"{list(parts[1].columns)} != {list(parts[0].columns)}"
        )
    return pd.concat(parts, ignore_index=True)


def curate_all(data_dir: Path) -> Curated:
    """Run every curation on the raw files under `data_dir` (no writes)."""
    results: dict[TargetName, CurationResult] = {
        TargetName.IONIC_CONDUCTIVITY: curate_conductivity(
            _raw(data_dir, "kang2023"),
            _raw(data_dir, "xu2020_train"),
            _raw(data_dir, "xu2020_test"),
            _raw(data_dir, "obelix_all"),
            _raw(data_dir, "obelix_train"),
            _raw(data_dir, "obelix_test"),
            _raw(data_dir, "liverpool"),
            na_non_nasicon_raw(data_dir),
        ),
        TargetName.CAPACITY_RETENTION: curate_retention(_raw(data_dir, "retention")),
        TargetName.AVERAGE_VOLTAGE: curate_voltage(_raw(data_dir, "voltage")),
    }
    return Curated(
        tables={t: r.table for t, r in results.items()},
        report=concat_reports([r.report for r in results.values()]),
    )


def curated_path(target: TargetName | str, data_dir: Path) -> Path:
    return data_dir / CURATED_DIR / f"{get_target(target).name.value}.csv"


def to_csv_text(df: pd.DataFrame) -> str:
    """The exact text a curated table is stored as (fixed float format, "\\n" line ends)."""
    return df.to_csv(index=False, lineterminator="\n", float_format="%.10g")


def write_curated(curated: Curated, data_dir: Path) -> list[Path]:
    """Write each table, the per-row report and the summary under data_dir/curated; return the paths."""
    out = data_dir / CURATED_DIR
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for target, table in curated.tables.items():
        path = curated_path(target, data_dir)
        path.write_text(to_csv_text(table), encoding="utf-8")
        written.append(path)
    for name, frame in ((REPORT_FILE, curated.report), (SUMMARY_FILE, curated.summary)):
        (out / name).write_text(to_csv_text(frame), encoding="utf-8")
        written.append(out / name)
    return written


def load_curated(target: TargetName | str, data_dir: Path) -> pd.DataFrame:
    """A curated table as written by `nascreen data curate` (text columns stay strings; "NaN" stays NaN)."""
    path = curated_path(target, data_dir)
    if not path.is_file():
        raise FileNotFoundError(f"curated table {path} not found: run `nascreen data curate` first")
    header = pd.read_csv(path, nrows=0).columns
    text: dict[Hashable, Any] = {c: str for c in header if c in _TEXT_COLUMNS}
    return pd.read_csv(
        path, dtype=text, keep_default_na=False, na_values={c: [""] for c in header if c not in text}
    )
