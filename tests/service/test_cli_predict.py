"""`nascreen predict` on a model trained in a temporary store: every row back, in order, CSV or Parquet."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from service.cli import predict as predict_cli

pytestmark = pytest.mark.mlflow


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    application = typer.Typer()

    @application.callback()
    def _root() -> None:
        """Test root so that `predict` is a sub-command, as in `nascreen`."""

    predict_cli.register(application)
    return application


def run_predict(app: typer.Typer, src: Path, out: Path, uri: str, target: str = "capacity_retention"):
    args = ["predict", str(src), "--target", target, "-o", str(out), "--tracking-uri", uri]
    return CliRunner().invoke(app, args)


def test_predict_keeps_every_row_and_column(app, trained_retention_store, tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text(
        "id,formula,cycles,note\n"
        "a,Na0.67Mn0.67Ni0.33O2,100,keep me\n"
        "b,NaN,100,sodium nitride not missing\n"
        "c,Na2XyO3,100,\n"
        "d,NaNi0.5Mn0.5O2,,no cycles\n"
    )
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(
        app,
        [
            "predict",
            str(src),
            "--target",
            "capacity_retention",
            "-o",
            str(out),
            "--tracking-uri",
            trained_retention_store.tracking_uri,
        ],
    )
    assert result.exit_code == 0, result.output
    df = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(df.columns) == [
        "id",
        "formula",
        "cycles",
        "note",
        "prediction",
        "std",
        "lower_90",
        "upper_90",
        "in_domain",
        "domain_reason",
        "model_version",
        "error",
    ]
    assert df["id"].tolist() == ["a", "b", "c", "d"]
    assert df["formula"].tolist() == ["Na0.67Mn0.67Ni0.33O2", "NaN", "Na2XyO3", "NaNi0.5Mn0.5O2"]
    assert df["note"].tolist() == ["keep me", "sodium nitride not missing", "", "no cycles"]
    assert df.loc[0, "error"] == "" and float(df.loc[0, "prediction"]) > 0
    assert df.loc[1, "error"] == ""  # NaN parsed as Na + N, not a missing value
    assert "unknown element Xy" in df.loc[2, "error"]
    assert df.loc[3, "error"] == "cycles is required"
    assert (df["model_version"] == trained_retention_store.version).all()


def test_predict_without_a_champion_says_so(app, tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("formula\nNaMnO2\n")
    result = CliRunner().invoke(
        app,
        [
            "predict",
            str(src),
            "--target",
            "ionic_conductivity",
            "-o",
            str(tmp_path / "o.csv"),
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'empty.db'}",
        ],
    )
    assert result.exit_code == 1
    assert "nascreen train" in result.output
    assert not (tmp_path / "o.csv").exists()


def test_predict_parquet_in_and_out_equals_csv(app, trained_retention_store, tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("formula,cycles\nNa0.67Mn0.67Ni0.33O2,100\nNaNi0.5Mn0.5O2,50\nQq,3\n")
    csv_out, pq_out = tmp_path / "out.csv", tmp_path / "out.parquet"
    assert run_predict(app, src, csv_out, trained_retention_store.tracking_uri).exit_code == 0
    result = run_predict(app, src, pq_out, trained_retention_store.tracking_uri)
    assert result.exit_code == 0, result.output
    a = pd.read_csv(csv_out, keep_default_na=False, na_values={c: [""] for c in ("prediction", "std")})
    b = pq.read_table(pq_out).to_pandas()
    assert b["cycles"].tolist() == ["100", "50", "3"]  # text in, text out
    assert b["in_domain"].dtype == bool
    pd.testing.assert_series_equal(a["prediction"], b["prediction"])
    assert a["error"].tolist() == b["error"].tolist()
    # a Parquet input (typed columns) gives the same answers
    again = tmp_path / "again.csv"
    result = run_predict(app, pq_out.with_name("in.parquet"), again, trained_retention_store.tracking_uri)
    assert result.exit_code != 0  # not there yet: the file must exist
    pq.write_table(pq.read_table(pq_out).select(["formula", "cycles"]), tmp_path / "in.parquet")
    result = run_predict(app, tmp_path / "in.parquet", again, trained_retention_store.tracking_uri)
    assert result.exit_code == 0, result.output
    c = pd.read_csv(again, keep_default_na=False, na_values={"prediction": [""]})
    pd.testing.assert_series_equal(a["prediction"], c["prediction"])


def test_predict_misread_inputs_become_row_errors(app, trained_retention_store, tmp_path: Path) -> None:
    """Issue 11: a CR inside a (quoted) cell, a NUL byte, a blank line, "1_000" and non-ASCII digits."""
    src = tmp_path / "in.csv"
    src.write_bytes(
        b"formula,cycles,note\n"
        b'Na0.67Mn0.67Ni0.33O2,100,"two\rlines"\n'
        b"Na\x00Cl,100,nul\n"
        b"\n"
        b"NaNi0.5Mn0.5O2,1_000,underscore\n"
        + "NaNi0.5Mn0.5O2,\u0661\u0660\u0660,arabic-indic\n".encode()
        + b"NaNi0.5Mn0.5O2, 100 ,spaces\n"
    )
    out = tmp_path / "out.csv"
    result = run_predict(app, src, out, trained_retention_store.tracking_uri)
    assert result.exit_code == 0, result.output
    with open(out, newline="", encoding="utf-8") as handle:  # csv, not pandas: pandas cuts cells at NUL
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6
    assert [r["note"] for r in rows] == ["two\rlines", "nul", "", "underscore", "arabic-indic", "spaces"]
    assert rows[1]["formula"] == "Na\x00Cl"
    assert rows[5]["cycles"] == " 100 "
    errors = [r["error"] for r in rows]
    assert errors[0] == "" and errors[5] == ""
    assert "Na\\x00Cl" in errors[1]
    assert "formula" in errors[2] or "empty" in errors[2]
    assert errors[3] == "cycles='1_000' is not a number"
    assert errors[4] == "cycles='\u0661\u0660\u0660' is not a number"


def test_predict_refuses_a_ragged_csv_without_writing(app, trained_retention_store, tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("formula,cycles\nNaMnO2,100\nNaMnO2,100,extra\n")
    out = tmp_path / "out.csv"
    result = run_predict(app, src, out, trained_retention_store.tracking_uri)
    assert result.exit_code != 0
    assert "Expected 2 columns, got 3" in result.output
    assert not out.exists() and not list(tmp_path.glob(".out.csv*"))
