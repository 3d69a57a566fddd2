"""The candidate frames equal the previous path's, column for column (names, order, dtypes, values).

The files under ``data/candidates_previous/`` were written by the per-column pandas assembly that
``screening.candidates`` used before the frames were built in one go (commit 79a5037), with
``PYTHONPATH=. .venv/bin/python -P tests/screening/test_candidates_previous.py``. The specs cover every
form and check: substitution with each compensation, co-doping (duplicates, a second site), templates
(one and two variables, negative amounts, the checker's reason), a chunk that starts mid-space and a block
above ``_SMALL`` rows (the factorised formula path)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from spec_mappings import p2_mapping as _p2

from screening.candidates import candidate_chunk, count_candidates
from screening.spec import ScreeningSpec, parse_spec

DATA = Path(__file__).resolve().parent / "data" / "candidates_previous"


def _template(formula: str | list[str], variables: dict[str, Any], dopants: list[str], **extra: Any) -> dict:
    return {
        "name": "t",
        "family": extra.pop("family", "halide"),
        "host": extra.pop("host", "Na2ZrCl6"),
        "template": {"formula": formula, "variables": variables},
        "dopants": dopants,
        **extra,
    }


#: name -> (spec mapping, start, stop or None for the whole space)
CASES: dict[str, tuple[dict[str, Any], int, int | None]] = {
    "nasicon_rank": (
        {
            "name": "rank",
            "family": "nasicon",
            "host": "Na3Zr2Si2PO12",
            "site": "Zr",
            "dopants": ["Hf", "Ti", "Sn", "Nb"],
            "fractions": [0.05, 0.1, 0.2],
            "compensation": "na_content",
        },
        0,
        None,
    ),
    "p2_variable_valence": (_p2(), 0, None),
    "p2_na_content": (_p2(compensation="na_content", fractions=[0.1, 0.2, 0.4]), 0, None),
    "p2_vacancy_o": (_p2(compensation={"mode": "vacancy", "site": "O"}, dopants=["Mg", "Nb"]), 0, None),
    "p2_fully_substituted": (_p2(dopants=["Mg", "Ti"], fractions=[0.8]), 0, None),
    "p2_codoping": (
        _p2(dopants=["Ru", "Ti"], fractions=[0.1], codoping={"dopants": ["Ru", "Ti"], "fractions": [0.1]}),
        0,
        None,
    ),
    "p2_codoping_li_site": (
        _p2(dopants=["Ru"], fractions=[0.1], codoping={"dopants": ["Mg"], "fractions": [0.05], "site": "Li"}),
        0,
        None,
    ),
    "p2_large_block_mid_chunk": (
        _p2(fractions={"start": 0.00005, "stop": 0.3, "step": 0.00005}, decimals=5),
        3,
        9000,
    ),
    "halide_templates": (
        _template(
            ["Na{2+x*(4-v)}Zr{1-x}{M}{x}Cl6", "Na{3-x}{M}{1-x}Zr{x}Cl6"], {"x": [0.1, 0.5, 1.2]}, ["Y", "Ta"]
        ),
        0,
        None,
    ),
    "nasicon_two_variables": (
        _template(
            "Na{1+x+y*(4-v)}Zr{2-y}{M}{y}Si{x}P{3-x}O12",
            {"x": [2.0], "y": [0.1, 0.2]},
            ["Sc", "Nb"],
            family="nasicon",
            host="Na3Zr2Si2PO12",
        ),
        0,
        None,
    ),
    "oxychloride": (
        _template(
            "{x}Na2O2-{M}Cl{v}",
            {"x": [0.8, 1.0, 1.2]},
            ["Hf", "Ta"],
            family="oxychloride",
            host="Na2O2-HfCl4",
        ),
        0,
        None,
    ),
}


def _frames(name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    mapping, start, stop = CASES[name]
    spec: ScreeningSpec = parse_spec(mapping)
    chunk = candidate_chunk(spec, start, count_candidates(spec) if stop is None else stop)
    return chunk.accepted, chunk.rejected


@pytest.mark.parametrize("name", sorted(CASES))
def test_candidate_frames_equal_the_previous_path(name: str) -> None:
    accepted, rejected = _frames(name)
    for kind, got in (("accepted", accepted), ("rejected", rejected)):
        want = pd.read_parquet(DATA / f"{name}_{kind}.parquet")
        assert list(got.columns) == list(want.columns), kind
        assert got.dtypes.astype(str).tolist() == want.dtypes.astype(str).tolist(), kind
        assert len(got) == len(want), kind
        for col in got.columns:  # exact: formulas, reasons, ids and the float columns bit for bit
            a, b = got[col].to_numpy(), want[col].to_numpy()
            if a.dtype.kind == "f":
                assert np.array_equal(a, b, equal_nan=True), (kind, col)
            else:
                assert a.tolist() == b.tolist(), (kind, col)
    assert len(accepted) > 0


def write_snapshots() -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    for name in sorted(CASES):
        accepted, rejected = _frames(name)
        accepted.to_parquet(DATA / f"{name}_accepted.parquet", index=False)
        rejected.to_parquet(DATA / f"{name}_rejected.parquet", index=False)
        print(f"{name}: {len(accepted)} accepted, {len(rejected)} rejected", file=sys.stderr)


if __name__ == "__main__":
    write_snapshots()
