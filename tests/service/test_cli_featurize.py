"""`nascreen featurize`: one output row per input row in order, input columns kept, errors per row."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
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


# --------------------------------------------------------------------------------------------------------
# File formats, batches, worker processes and what input reading must never do (issue 11.3/11.4, 13.1)


def read_rows(path: Path) -> list[list[str]]:
    """The output CSV as exact text (Python's csv module: pandas would cut cells at a NUL byte)."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def rfc4180(rows: list[list[str]], newline: str = "\n") -> str:
    """CSV as an RFC 4180 writer makes it: a cell with a comma, quote, CR or LF is quoted. (Python's csv
    module does not quote a bare CR when its line terminator is LF, which is how issue 11 found the bug.)"""

    def cell(text: str) -> str:
        return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\r\n') else text

    return "".join(",".join(cell(c) for c in row) + newline for row in rows)


def test_parquet_out_equals_csv_out(app: typer.Typer, tmp_path: Path) -> None:
    csv_out, pq_out = tmp_path / "out.csv", tmp_path / "out.parquet"
    runner = CliRunner()
    assert runner.invoke(app, ["featurize", str(EXAMPLE), "-o", str(csv_out)]).exit_code == 0
    result = runner.invoke(app, ["featurize", str(EXAMPLE), "-o", str(pq_out)])
    assert result.exit_code == 0, result.output
    labels = get_feature_set("magpie_v1").feature_labels()
    a = pd.read_csv(
        csv_out, keep_default_na=False, na_values={key: [""] for key in labels}, float_precision="round_trip"
    )
    b = pq.read_table(pq_out).to_pandas()
    assert list(a.columns) == list(b.columns)
    np.testing.assert_array_equal(a[labels].to_numpy(dtype=float), b[labels].to_numpy(dtype=float))
    assert b["formula"].tolist() == a["formula"].tolist() and b["error"].tolist() == a["error"].tolist()
    # the Parquet output is itself a valid input (the formula column is text), e.g. for another feature set
    again = tmp_path / "again.csv"
    result = runner.invoke(app, ["featurize", str(pq_out), "-f", "stoichiometry", "-o", str(again)])
    assert result.exit_code != 0 and "already has output columns" in plain(result.output)
    pq.write_table(pq.read_table(pq_out).select(["formula", "note"]), tmp_path / "in.parquet")
    result = runner.invoke(app, ["featurize", str(tmp_path / "in.parquet"), "-o", str(again)])
    assert result.exit_code == 0, result.output
    assert read_rows(again) == read_rows(csv_out)


def test_floats_read_back_identical(app: typer.Typer, tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("formula\nNa0.6Li0.2Mn0.8O2\nNaNi0.33Fe0.33Mn0.33O2\nFe2O3\n")
    out = tmp_path / "out.csv"
    assert CliRunner().invoke(app, ["featurize", str(src), "-o", str(out)]).exit_code == 0
    fs = get_feature_set("magpie_v1")
    formulas = ["Na0.6Li0.2Mn0.8O2", "NaNi0.33Fe0.33Mn0.33O2", "Fe2O3"]
    expected = fs.compute([parse_formula(f) for f in formulas])
    got = np.array([[float(x) for x in row[1:-1]] for row in read_rows(out)[1:]])
    np.testing.assert_array_equal(got, expected)  # shortest round-trip text: bit-identical float64


def test_cr_nul_and_blank_lines_keep_every_row(app: typer.Typer, tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_bytes(b'formula,note\nNaCl,"a\rb"\nNa\x00Cl,nul\n\nFe2O3,"x\r\ny"\n,\n')
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(app, ["featurize", str(src), "-f", "stoichiometry", "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = read_rows(out)[1:]
    assert [r[0] for r in rows] == ["NaCl", "Na\x00Cl", "", "Fe2O3", ""]
    assert [r[1] for r in rows] == ["a\rb", "nul", "", "x\r\ny", ""]
    assert [r[-1] for r in rows] == [
        "",
        parse_error("Na\x00Cl"),
        '"": empty formula',
        "",
        '"": empty formula',
    ]
    assert "\\x00" in rows[1][-1]  # the reason names the cell, NUL visible


def parse_error(formula: str) -> str:
    from featurize.transformer import featurize_formulas

    return featurize_formulas([formula], "stoichiometry_v1").errors[0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"formula,note\nNaCl,a\nNaCl,a,b\n", "Expected 2 columns, got 3"),
        (b"formula,note\nNa\rCl,a\n", "Expected 2 columns, got 1"),  # an unquoted CR ends a row
        (b"formula\n\xff\xfeNa\n", "UTF8"),
        (b"", "is empty"),
    ],
)
def test_unreadable_csv_is_refused_naming_the_file(
    app: typer.Typer, tmp_path: Path, content: bytes, message: str
) -> None:
    src = tmp_path / "in.csv"
    src.write_bytes(content)
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(app, ["featurize", str(src), "-o", str(out)])
    assert result.exit_code != 0
    assert message in plain(result.output) and "in.csv" in plain(result.output)
    assert not out.exists() and not list(tmp_path.glob(".out.csv*"))  # nothing half-written left


def test_batches_and_jobs_give_the_same_bytes(
    app: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import service.cli.tables as tables

    monkeypatch.setattr(tables, "CSV_BLOCK_BYTES", 2048)  # many small batches
    formulas = [f"Na{i % 7 + 1}Mn{i % 5 + 1}O{i % 3 + 2}" for i in range(1500)] + ["Xx", "", "NaN"] * 10
    src = tmp_path / "in.csv"
    src.write_text("formula,id\n" + "".join(f"{f},{i}\n" for i, f in enumerate(formulas)))
    runner = CliRunner()
    outs = {}
    for jobs in ("1", "2", "3"):  # this process alone; with one worker; with two
        outs[jobs] = tmp_path / f"out{jobs}.csv"
        args = ["featurize", str(src), "-f", "magpie", "-o", str(outs[jobs]), "--jobs", jobs]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert f"{len(formulas)} rows" in result.output and "20 failed" in result.output
        assert "row 1500: " in result.output  # row numbers count across batches
    assert outs["1"].read_bytes() == outs["2"].read_bytes() == outs["3"].read_bytes()
    rows = read_rows(outs["1"])[1:]
    assert [r[1] for r in rows] == [str(i) for i in range(len(formulas))]
    # Parquet through the workers too
    pq_out = tmp_path / "out.parquet"
    result = runner.invoke(app, ["featurize", str(src), "-o", str(pq_out), "--jobs", "2"])
    assert result.exit_code == 0, result.output
    assert pq.read_table(pq_out).column("id").to_pylist() == [str(i) for i in range(len(formulas))]


def test_progress_bar_only_on_a_terminal_and_for_long_files(tmp_path: Path) -> None:
    from service.cli.tables import PROGRESS_MIN_BYTES, ProgressBar, open_table

    small = tmp_path / "small.csv"
    small.write_text("formula\nNaCl\n")
    big = tmp_path / "big.csv"
    big.write_text("formula\n" + "NaCl\n" * (PROGRESS_MIN_BYTES // 5 + 1))
    assert not ProgressBar(open_table(small), "x", enabled=True).enabled  # too short to need one
    assert ProgressBar(open_table(big), "x", enabled=True).enabled
    assert not ProgressBar(open_table(big), "x").enabled  # pytest's stderr is not a terminal


_VALID = ["NaCl", "Fe2O3", "Na0.67Mn0.67Ni0.33O2", "NaN", "Na[Li1/3Ru2/3]O2", "", " NaCl"]
_CELL = st.one_of(
    st.sampled_from(_VALID),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=10),  # any text but lone surrogates
    st.text(st.sampled_from(',"\r\n\x00 Na'), max_size=6),  # the CSV-structural characters, densely
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.lists(_CELL, min_size=2, max_size=2), max_size=8),
    single=st.booleans(),
    newline=st.sampled_from(["\n", "\r\n"]),
    parquet=st.booleans(),
)
def test_property_every_row_back_in_order_with_its_text(
    app: typer.Typer, tmp_path: Path, rows: list[list[str]], single: bool, newline: str, parquet: bool
) -> None:
    header = ["formula"] if single else ["note", "formula"]
    cells = [r[:1] for r in rows] if single else rows
    src, out = tmp_path / "in.csv", tmp_path / ("out.parquet" if parquet else "out.csv")
    src.write_bytes(rfc4180([header, *cells], newline).encode())
    result = CliRunner().invoke(app, ["featurize", str(src), "-f", "stoichiometry", "-o", str(out)])
    assert result.exit_code == 0, result.output
    if parquet:
        table = pq.read_table(out)
        back = [[str(table.column(c)[i]) for c in [*header, "error"]] for i in range(table.num_rows)]
        got_header = table.column_names
    else:
        lines = read_rows(out)
        got_header, back = lines[0], [[*r[: len(header)], r[-1]] for r in lines[1:]]
    assert got_header[: len(header)] == header and got_header[-1] == "error"
    assert [r[: len(header)] for r in back] == cells  # every row, in order, the exact text
    formulas = [c[header.index("formula")] for c in cells]
    assert [r[-1] for r in back] == [parse_error(f) for f in formulas]  # an error for what cannot be read
