"""Data lineage: `nascreen data curate` on the committed raw files reproduces the committed curated tables
byte for byte; the loader, the content hash and the summary numbers behave as the contract says."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import models
from models.data import dataset_hash, load_curated, read_raw_csv, summarize_table
from models.data.loader import CURATED_DIR, RAW_FILES, REPORT_FILE, curated_path, to_csv_text
from models.phase import PHASES
from models.targets import TargetName, get_target
from service.cli import app
from service.cli import data as data_cli

REPO_DATA = Path(models.__file__).resolve().parents[1] / "data"
RAW_ROWS = {
    TargetName.IONIC_CONDUCTIVITY: [
        "kang2023", "xu2020_train", "xu2020_test", "obelix_all", "obelix_train", "obelix_test", "liverpool",
        "na_non_nasicon", "na_non_nasicon_extra",
    ],
    TargetName.CAPACITY_RETENTION: ["retention"],
    TargetName.AVERAGE_VOLTAGE: ["voltage"],
}  # fmt: skip
runner = CliRunner()


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of data/raw curated from scratch through the real CLI command."""
    if "data" not in {g.name for g in app.registered_groups}:
        data_cli.register(app)
    root = tmp_path_factory.mktemp("data")
    shutil.copytree(REPO_DATA / "raw", root / "raw")
    result = runner.invoke(app, ["data", "curate", "--data-dir", str(root)])
    assert result.exit_code == 0, result.output
    return root


@pytest.mark.parametrize("target", list(TargetName))
def test_curation_reproduces_the_committed_tables_exactly(fresh: Path, target: TargetName):
    committed = curated_path(target, REPO_DATA).read_text(encoding="utf-8")
    assert curated_path(target, fresh).read_text(encoding="utf-8") == committed


def test_curation_reproduces_the_committed_report(fresh: Path):
    name = Path(CURATED_DIR) / REPORT_FILE
    assert (fresh / name).read_text(encoding="utf-8") == (REPO_DATA / name).read_text(encoding="utf-8")


def test_check_mode_passes_on_fresh_tables_and_fails_on_a_stale_one(fresh: Path, tmp_path: Path):
    assert runner.invoke(app, ["data", "curate", "--check", "--data-dir", str(fresh)]).exit_code == 0
    stale = tmp_path / "data"
    shutil.copytree(fresh, stale)
    path = curated_path(TargetName.AVERAGE_VOLTAGE, stale)
    path.write_text(path.read_text(encoding="utf-8").replace("mp-", "mq-", 1), encoding="utf-8")
    result = runner.invoke(app, ["data", "curate", "--check", "--data-dir", str(stale)])
    assert result.exit_code == 1 and "stale" in result.output


@pytest.mark.parametrize("target", list(TargetName))
def test_every_raw_row_is_in_the_table_or_the_report(fresh: Path, target: TargetName):
    report = read_raw_csv(fresh / CURATED_DIR / REPORT_FILE)
    mine = report[report["target"] == target.value]
    table = load_curated(target, fresh)
    # OBELiX train/test files only carry the split; their rows are the all.csv rows.
    keys = [k for k in RAW_ROWS[target] if k not in ("obelix_train", "obelix_test")]
    n_raw = sum(len(read_raw_csv(fresh / RAW_FILES[k])) for k in keys)
    removed = mine[mine["action"].isin(["dropped", "merged"])]
    assert len(table) + len(removed) == n_raw
    assert not removed.duplicated(["dataset", "raw_row"]).any()
    assert (mine["reason"] != "").all()


def test_conductivity_table_invariants():
    df = load_curated(TargetName.IONIC_CONDUCTIVITY, REPO_DATA)
    assert np.isfinite(df["log10_sigma_s_cm"]).all()
    assert not df.duplicated(["formula", "mobile_ion", "phase"]).any()
    assert set(df["phase"]) <= set(PHASES)
    assert set(df["mobile_ion"]) == {"Na", "Li"}
    assert set(df.loc[df["mobile_ion"] == "Na", "dataset"]) == {"kang2023", "xu2020", "na_non_nasicon"}
    assert set(df.loc[df["mobile_ion"] == "Li", "dataset"]) == {"obelix", "liverpool"}
    assert set(df.loc[df["dataset"] == "obelix", "obelix_split"]) == {"train", "test"}
    assert (df.loc[df["dataset"] != "obelix", "obelix_split"] == "").all()
    assert df["temperature_c"].between(15, 35).all()
    censored = df[df["censored"]]
    assert len(censored) > 0 and set(censored["dataset"]) == {"obelix"}
    assert (censored["log10_sigma_s_cm"] >= -10).all()  # bounds, never a made-up 1e-15
    assert (df["formula"] != "").all() and (df["source"] != "").all()


def test_retention_and_voltage_table_invariants():
    ret = load_curated(TargetName.CAPACITY_RETENTION, REPO_DATA)
    assert ret["retention_pct"].between(0, 105, inclusive="right").all()
    assert (ret["cycles"] >= 1).all()
    window = ret.dropna(subset=["voltage_low_V", "voltage_high_V"])
    assert (window["voltage_low_V"] < window["voltage_high_V"]).all()
    assert (ret["doi"] != "").all()
    volt = load_curated(TargetName.AVERAGE_VOLTAGE, REPO_DATA)
    assert volt["average_voltage_v"].between(0, 6, inclusive="right").all()
    assert not volt.duplicated(["working_ion", "formula", "formula_charge"]).any()
    assert (volt["working_ion"] == "Na").sum() > 0
    ions = volt["working_ion"].to_numpy()
    assert all(ion not in cs.split("-") for ion, cs in zip(ions, volt["chemsys"], strict=True))


@pytest.mark.parametrize("target", list(TargetName))
def test_hash_survives_the_csv_round_trip(fresh: Path, target: TargetName):
    a, b = load_curated(target, fresh), load_curated(target, REPO_DATA)
    assert dataset_hash(a) == dataset_hash(b)
    assert to_csv_text(a) == curated_path(target, REPO_DATA).read_text(encoding="utf-8")


def test_dataset_hash_tracks_content_only():
    df = pd.DataFrame({"formula": ["NaCl", "NaN"], "v": [1.0, 2.5]})
    h = dataset_hash(df)
    assert h == dataset_hash(df.set_axis([10, 20]))  # index does not matter
    assert h != dataset_hash(df.assign(v=[1.0, 2.6]))
    assert h != dataset_hash(df[["v", "formula"]])
    assert h != dataset_hash(df.iloc[::-1])
    assert len(h) == 16 and int(h, 16) >= 0


def test_nan_formula_is_sodium_nitride_everywhere(tmp_path: Path):
    raw = tmp_path / "raw.csv"
    raw.write_text("formula,value\nNaN,1\nNaCl,\n", encoding="utf-8")
    df = read_raw_csv(raw)
    assert list(df["formula"]) == ["NaN", "NaCl"] and list(df["value"]) == ["1", ""]
    (tmp_path / CURATED_DIR).mkdir()
    table = pd.DataFrame(
        {"formula": ["NaN"], "formula_charge": ["N"], "working_ion": ["Na"], "average_voltage_v": [1.0]}
    ).assign(chemsys="N", max_delta_volume=np.nan)
    curated_path(TargetName.AVERAGE_VOLTAGE, tmp_path).write_text(to_csv_text(table), encoding="utf-8")
    back = load_curated(TargetName.AVERAGE_VOLTAGE, tmp_path)
    assert back["formula"].iloc[0] == "NaN" and back["chemsys"].iloc[0] == "N"
    assert math.isnan(back["max_delta_volume"].iloc[0])


def test_load_curated_names_the_missing_file(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="nascreen data curate"):
        load_curated("average_voltage", tmp_path)
    with pytest.raises(ValueError, match="unknown target"):
        load_curated("band_gap", tmp_path)


def test_summary_numbers_on_a_hand_made_table():
    df = pd.DataFrame(
        {
            "formula": ["NaA", "NaA", "LiB", "LiC"],
            "log10_sigma_s_cm": [-3.0, -4.0, -2.5, -9.0],
            "mobile_ion": ["Na", "Na", "Li", "Li"],
            "source": ["10.1/a;10.1/b", "10.1/a", "", "kang2023:ref3"],
        }
    )
    s = summarize_table("ionic_conductivity", df)
    assert (s.rows, s.distinct_formulas, s.na_rows, s.sources) == (4, 3, 2, 3)
    assert (s.value_min, s.value_max) == (-9.0, -2.5)
    assert s.unit == get_target("ionic_conductivity").unit


def test_summary_command_prints_every_target(fresh: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NASCREEN_DATA_DIR", str(fresh))
    monkeypatch.setenv("COLUMNS", "200")
    result = runner.invoke(app, ["data", "summary", "--report"])
    assert result.exit_code == 0, result.output
    assert str(fresh) in result.output.replace("\n", "")
    for target in TargetName:
        df = load_curated(target, fresh)
        s = summarize_table(target, df)
        line = next(ln for ln in result.output.splitlines() if target.value in ln)
        cells = [c.strip() for c in line.split("│") if c.strip()]
        assert cells[:5] == [
            target.value,
            str(s.rows),
            str(s.distinct_formulas),
            str(s.na_rows),
            str(s.sources),
        ]
    assert "rate-performance" in result.output


def test_summary_command_explains_a_missing_curation(tmp_path: Path):
    result = runner.invoke(app, ["data", "summary", "--data-dir", str(tmp_path)])
    assert result.exit_code != 0
    assert "nascreen data curate" in result.output
