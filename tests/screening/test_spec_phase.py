"""The spec's ``phase``: typed at the boundary (spelling variants normalised, other text an error naming
the field), ``unknown`` by default, and carried by every accepted candidate into what a predictor reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from models.phase import PHASES
from screening.candidates import candidate_chunk, count_candidates
from screening.scoring import INPUT_COLUMNS
from screening.spec import SpecError, parse_spec
from screening.spec_io import load_spec

SPECS = Path(__file__).resolve().parents[2] / "examples" / "specs"
HALIDE: dict[str, Any] = {
    "name": "halide_phase",
    "family": "halide",
    "host": "Na2ZrCl6",
    "site": "Zr",
    "dopants": ["Y", "Ta"],
    "fractions": [0.1, 0.2],
    "compensation": "na_content",
}


def test_phase_defaults_to_unknown_and_reaches_every_candidate() -> None:
    spec = parse_spec(HALIDE)
    assert spec.phase == "unknown"
    accepted = candidate_chunk(spec, 0, count_candidates(spec)).accepted
    assert len(accepted) > 1 and (accepted["phase"] == "unknown").all()
    assert "phase" in INPUT_COLUMNS  # score_candidates sends it to every predictor


@pytest.mark.parametrize(
    ("given", "phase"),
    [("amorphous", "amorphous"), ("Glass_Ceramic", "glass-ceramic"), ("glassy", "glass"), ("", "unknown")],
)
def test_phase_spellings_are_normalised(given: str, phase: str) -> None:
    spec = parse_spec({**HALIDE, "phase": given})
    assert spec.phase == phase and phase in PHASES
    assert set(candidate_chunk(spec, 0, 3).accepted["phase"]) == {phase}


@pytest.mark.parametrize(
    ("given", "message"),
    [("sintered-ish", "phase: unknown phase 'sintered-ish'"), (3, "phase: needs a phase name, got 3")],
)
def test_a_bad_phase_is_one_line_naming_the_field(given: object, message: str) -> None:
    with pytest.raises(SpecError, match="^" + message):
        parse_spec({**HALIDE, "phase": given})


def test_the_seed_specs_state_their_phase() -> None:
    assert load_spec(SPECS / "oxychloride_na2o2_mcly.yaml").phase == "amorphous"
    assert load_spec(SPECS / "halide_na2zrcl6_dopants.yaml").phase == "crystalline"
    assert load_spec(SPECS / "nasicon_zr_site.yaml").phase == "unknown"
