"""`nascreen predict` on a model trained in a temporary store: every row back, in order, CSV or Parquet."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from models.relative import RELATIVE_EXTRA
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


# ------------------------------------------------------------------ --reference / --anchors (issue 8 point 2)
HOST = "Na0.6Li0.2Mn0.8O2"


def run_relative(app: typer.Typer, src: Path, out: Path, uri: str, *extra: str):
    args = ["predict", str(src), "-t", "capacity_retention", "-o", str(out), "--tracking-uri", uri]
    return CliRunner().invoke(app, [*args, "--reference", HOST, *extra])


def test_reference_adds_relative_columns_in_row_order(app, trained_retention_store, tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text(
        "id,formula,cycles\n"
        f"host,{HOST},200\n"
        "ru,Na0.6Li0.2Mn0.7Ru0.1O2,200\n"
        "bad,Na2XyO3,200\n"
        "nocycles,Na0.6Li0.2Mn0.7Ru0.1O2,\n"
        "ru50,Na0.6Li0.2Mn0.7Ru0.1O2,50\n"
    )
    out = tmp_path / "out.csv"
    result = run_relative(app, src, out, trained_retention_store.tracking_uri)
    assert result.exit_code == 0, result.output
    df = pd.read_csv(out, keep_default_na=False, na_values={c: [""] for c in RELATIVE_EXTRA})
    assert list(df.columns) == [
        "id",
        "formula",
        "cycles",
        "prediction",
        "std",
        "lower_90",
        "upper_90",
        "in_domain",
        "domain_reason",
        "model_version",
        "error",
        *RELATIVE_EXTRA,
    ]
    assert df["id"].tolist() == ["host", "ru", "bad", "nocycles", "ru50"]
    assert (df["reference_formula"] == HOST).all()
    host, ru = df.iloc[0], df.iloc[1]
    assert host["delta"] == 0.0 and host["p_better"] == 0.5
    assert float(host["reference_prediction"]) == pytest.approx(float(host["prediction"]))
    assert host["delta_lower_90"] < 0 < host["delta_upper_90"]
    assert ru["delta_lower_90"] <= ru["delta"] <= ru["delta_upper_90"]
    assert 0.0 <= ru["p_better"] <= 1.0 and ru["delta_std"] > 0
    # the reference is predicted under each row's own protocol
    assert float(df.loc[4, "reference_prediction"]) != pytest.approx(float(ru["reference_prediction"]))
    # bad rows keep their error, with no relative numbers
    assert "unknown element Xy" in df.loc[2, "error"] and df.loc[3, "error"] == "cycles is required"
    assert df.loc[[2, 3], ["delta", "delta_std", "p_better"]].isna().all().all()
    assert pd.isna(df.loc[3, "reference_prediction"])  # no cycles: the host cannot be predicted either
    # no anchors: anchored columns empty, n_anchors 0
    assert df["anchored_prediction"].isna().all() and (df["n_anchors"] == 0).all()


def test_anchors_offset_the_predictions(app, trained_retention_store, tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text(f"formula,cycles\n{HOST},200\nNa0.6Li0.2Mn0.7Ru0.1O2,200\nQq,200\n")
    anchors = tmp_path / "anchors.csv"
    anchors.write_text(f"formula,cycles,measured\n{HOST},200,45.5\n")
    out = tmp_path / "out.parquet"
    result = run_relative(app, src, out, trained_retention_store.tracking_uri, "--anchors", str(anchors))
    assert result.exit_code == 0, result.output
    df = pq.read_table(out).to_pandas()
    assert df["n_anchors"].tolist() == [1, 1, 1]
    good = df.iloc[:2]
    assert good["anchored_prediction"].notna().all()
    assert (good["anchored_lower_90"] <= good["anchored_prediction"]).all()
    assert (good["anchored_prediction"] <= good["anchored_upper_90"]).all()
    # the host measured below its prediction pulls both anchored values down
    assert (good["anchored_prediction"] < good["prediction"]).all()
    assert df["error"].iloc[2] != "" and pd.isna(df["anchored_prediction"].iloc[2])


@pytest.mark.parametrize(
    ("reference", "anchors", "expected"),
    [
        ("Na2XyO3", None, "reference 'Na2XyO3'"),
        (HOST, "formula,cycles\nNaMnO2,200\n", "no 'measured' column"),
        (HOST, "formula,cycles,measured\nNaMnO2,200,lots\n", "measured='lots' is not a number"),
        (HOST, "formula,cycles,measured\nNaQqO2,200,50\n", "anchor row 1 ('NaQqO2')"),
        (HOST, "formula,cycles,measured\n", "no rows"),
    ],
)
def test_bad_reference_or_anchor_is_one_clean_line(
    app, trained_retention_store, tmp_path: Path, reference: str, anchors: str | None, expected: str
) -> None:
    src = tmp_path / "in.csv"
    src.write_text(f"formula,cycles\n{HOST},200\n")
    out = tmp_path / "out.csv"
    args = ["predict", str(src), "-t", "capacity_retention", "-o", str(out)]
    args += ["--tracking-uri", trained_retention_store.tracking_uri, "--reference", reference]
    if anchors is not None:
        (tmp_path / "anchors.csv").write_text(anchors)
        args += ["--anchors", str(tmp_path / "anchors.csv")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert expected in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert not out.exists()


def test_model_without_relative_calibration_asks_for_retrain(
    app, trained_retention_store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import copy

    from models import predictor as predictor_module

    real = predictor_module.load_predictors

    def old_champion(targets, uri):
        loaded = real(targets, uri)
        for p in loaded.values():
            p.model = copy.copy(p.model)
            del p.model.relative_calibration_
        return loaded

    monkeypatch.setattr(predictor_module, "load_predictors", old_champion)
    src = tmp_path / "in.csv"
    src.write_text(f"formula,cycles\n{HOST},200\n")
    result = run_relative(app, src, tmp_path / "out.csv", trained_retention_store.tracking_uri)
    assert result.exit_code == 1
    assert "nascreen train --target" in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "out.csv").exists()


def test_anchors_need_a_reference(app, trained_retention_store, tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text(f"formula,cycles\n{HOST},200\n")
    (tmp_path / "a.csv").write_text(f"formula,cycles,measured\n{HOST},200,50\n")
    args = ["predict", str(src), "-t", "capacity_retention", "-o", str(tmp_path / "o.csv")]
    args += ["--tracking-uri", trained_retention_store.tracking_uri, "--anchors", str(tmp_path / "a.csv")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "--anchors needs --reference" in result.output
