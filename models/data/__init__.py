"""Curated data sets: pure curation functions (raw DataFrames -> table + report) and a thin loader.

from models.data import load_curated, dataset_hash
df = load_curated("ionic_conductivity", data_dir)
"""

from models.data.conductivity import curate_conductivity
from models.data.hashing import dataset_hash
from models.data.loader import Curated, curate_all, curated_path, load_curated, read_raw_csv, write_curated
from models.data.report import CurationResult, summarize_report
from models.data.retention import curate_retention
from models.data.summary import summarize_table
from models.data.voltage import curate_voltage

__all__ = [
    "Curated",
    "CurationResult",
    "curate_all",
    "curate_conductivity",
    "curate_retention",
    "curate_voltage",
    "curated_path",
    "dataset_hash",
    "load_curated",
    "read_raw_csv",
    "summarize_report",
    "summarize_table",
    "write_curated",
]
