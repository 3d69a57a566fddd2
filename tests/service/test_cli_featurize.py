"""`nascreen featurize`: one output row per input row in order, input columns kept, errors per row."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from featurize.composition import parse_formula
from featurize.featuresets import get_feature_set
from service.cli.featurize import register

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "compositions.csv"


@pytest.fixture()
def app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Test root so that `featurize` is a sub-command, as in `nascreen`."""

    register(app)
    return app


def plain(output: str) -> str:
    """CLI output without rich's box drawing and line wrapping."""
    return " ".join(re.sub("[│╭╮╰╯─]", " ", output).split())


def read_out(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, na_values={"MagpieData mean Number": [""]})


def test_featurize_example(app: typer.Typer, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(app, ["featurize", str(EXAMPLE), "--features", "magpie", "-o", str(out)])
    assert result.exit_code == 0, result.output
    inp = pd.read_csv(EXAMPLE, dtype=str, keep_default_na=False)
    df = read_out(out)
    labels = get_feature_set("magpie_v1").feature_labels()
    assert list(df.columns) == [*inp.columns, *labels, "error"]
    assert df["formula"].tolist() == inp["formula"].tolist()  # order kept, "NaN" stays a formula
    assert df["note"].tolist() == inp["note"].tolist()
    bad = df["error"] != ""
    assert df.loc[bad, "formula"].tolist() == ["Na2XyO3", ""]
    assert df.loc[bad, "error"].tolist() == ['"Na2XyO3": unknown element Xy', '"": empty formula']
    assert df.loc[bad, "MagpieData mean Number"].isna().all()
    good = df.loc[~bad]
    expected = get_feature_set("magpie_v1").compute([parse_formula(f) for f in good["formula"]])
    np.testing.assert_allclose(good[labels].to_numpy(dtype=float), expected, rtol=1e-15)
    assert df.loc[df["formula"] == "NaN", "MagpieData mean Number"].item() == pytest.approx(9.0)
    assert "2 failed" in result.output


def test_versioned_name_and_reference_path(app: typer.Typer, tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("formula\nFe2O3\nNaCl\nQq2O\n")
    fast, ref = tmp_path / "fast.csv", tmp_path / "ref.csv"
    runner = CliRunner()
    assert (
        runner.invoke(app, ["featurize", str(src), "-f", "stoichiometry_v1", "-o", str(fast)]).exit_code == 0
    )
    result = runner.invoke(app, ["featurize", str(src), "-f", "stoichiometry", "--reference", "-o", str(ref)])
    assert result.exit_code == 0, result.output
    a, b = pd.read_csv(fast), pd.read_csv(ref)
    assert list(a.columns) == [
        "formula",
        "0-norm",
        "2-norm",
        "3-norm",
        "5-norm",
        "7-norm",
        "10-norm",
        "error",
    ]
    np.testing.assert_allclose(a.iloc[:, 1:7].to_numpy(), b.iloc[:, 1:7].to_numpy(), rtol=1e-12)
    assert a["error"].fillna("").tolist() == ["", "", '"Qq2O": unknown element Qq']


def test_missing_file_and_missing_column_are_clear_errors(app: typer.Typer, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["featurize", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "o.csv")])
    assert result.exit_code != 0
    assert "does not exist" in plain(result.output)
    src = tmp_path / "in.csv"
    src.write_text("composition\nFe2O3\n")
    result = runner.invoke(app, ["featurize", str(src), "-o", str(tmp_path / "o.csv")])
    assert result.exit_code != 0
    assert "no 'formula' column" in plain(result.output)
    assert not (tmp_path / "o.csv").exists()


def test_unknown_feature_set(app: typer.Typer, tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("formula\nFe2O3\n")
    result = CliRunner().invoke(app, ["featurize", str(src), "-f", "bogus", "-o", str(tmp_path / "o.csv")])
    assert result.exit_code != 0
    assert "unknown feature set" in plain(result.output)
