"""Provenance rules of the hand-curated Na beyond-NASICON rows, checked on the committed raw files.

Every row must name where it was read and quote the sentence holding the number; the log10 column must be
the log10 of the sigma column; and no value may be entered twice from the same source (a second copy of the
same number would only leak across the grouped-CV source groups)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

import models
from featurize.composition import parse_formula
from models.data.conductivity import parse_sigma, source_id
from models.data.loader import na_non_nasicon_raw

REPO_DATA = Path(models.__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return na_non_nasicon_raw(REPO_DATA)


def test_every_row_names_its_source_and_quotes_a_number(raw: pd.DataFrame):
    for i, row in raw.iterrows():
        assert row["source"].strip(), f"row {i} ({row['formula']}): no source"
        assert any(ch.isdigit() for ch in row["quote"]), f"row {i} ({row['formula']}): quote holds no number"
        assert not source_id(row["source"]).startswith("ref:unnamed"), f"row {i}: source has no id"


def test_formula_parses_and_log10_matches_sigma(raw: pd.DataFrame):
    for i, row in raw.iterrows():
        parse_formula(row["formula"])
        sigma, censored, _ = parse_sigma(row["sigma_S_cm"])
        assert not censored and sigma > 0, f"row {i} ({row['formula']})"
        assert float(row["log10_sigma"]) == pytest.approx(math.log10(sigma), abs=0.006), f"row {i}"


def test_no_value_is_entered_twice_from_one_source(raw: pd.DataFrame):
    keys = pd.DataFrame(
        {
            "formula": raw["formula"].map(lambda f: parse_formula(f).formula),
            "source": raw["source"].map(source_id),
            "sigma": raw["sigma_S_cm"].map(lambda s: parse_sigma(s)[0]),
        }
    )
    duplicated = keys[keys.duplicated(keep=False)]
    assert duplicated.empty, duplicated.to_string()
