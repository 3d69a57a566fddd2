"""`nascreen predict` and `nascreen models` against a model trained in a temporary store."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from service.cli import models as models_cli

pytestmark = pytest.mark.mlflow


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    application = typer.Typer()
    models_cli.register(application)
    return application


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


def test_models_lists_the_champion(app, trained_retention_store) -> None:
    result = CliRunner().invoke(
        app, ["models", "--tracking-uri", trained_retention_store.tracking_uri], env={"COLUMNS": "300"}
    )
    assert result.exit_code == 0, result.output
    assert "nascreen-capacity_retention" in result.output
    assert "champion" in result.output
