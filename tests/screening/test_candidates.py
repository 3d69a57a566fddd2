"""Candidate generation: counts, chunk determinism, golden candidates, every rejection reason."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd
import pytest
from spec_mappings import p2_mapping

from featurize.composition import parse_formula
from featurize.oxidation import charge_balance_batch
from screening.candidates import ACCEPTED_COLUMNS, REJECTED_COLUMNS, candidate_chunk, count_candidates
from screening.spec import ScreeningSpec, parse_spec


def p2(**changes: Any) -> ScreeningSpec:
    return parse_spec(p2_mapping(**changes))


def whole(spec: ScreeningSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    chunk = candidate_chunk(spec, 0, count_candidates(spec))
    return chunk.accepted, chunk.rejected


def row(frame: pd.DataFrame, **match: Any) -> pd.Series:
    mask = np.ones(len(frame), dtype=bool)
    for k, v in match.items():
        mask &= np.isclose(frame[k], v) if isinstance(v, float) else (frame[k] == v).to_numpy()
    assert mask.sum() == 1, f"{match}: {mask.sum()} rows"
    return frame[mask].iloc[0]


def test_golden_p2_ru_candidate_is_balanced() -> None:
    acc, _ = whole(p2())
    ru = row(acc, dopant="Ru", fraction=0.1)
    assert ru["formula"] == "Na0.6Li0.2Mn0.7Ru0.1O2"
    assert parse_formula(ru["formula"]) == parse_formula("Na0.6Li0.2Mn0.7Ru0.1O2")
    assert ru["site"] == "Mn" and ru["dopant_valence"] == 4.0 and ru["compensation"] == "variable_valence"
    assert (ru["cycles"], ru["current_mA_g"], ru["voltage_low_V"], ru["voltage_high_V"]) == (
        100,
        170,
        2.0,
        4.5,
    )
    assert ru["working_ion"] == "Na" and ru["family"] == "p2_layered_oxide" and ru["structure_type"] == "P2"


def test_host_is_candidate_zero() -> None:
    spec = p2()
    acc, _ = whole(spec)
    host = acc.iloc[0]
    assert host["candidate_id"] == 0 and bool(host["is_host"])
    assert host["formula"] == "Na0.6Li0.2Mn0.8O2" and host["dopant"] == ""
    assert acc["is_host"].sum() == 1
    only_host = candidate_chunk(spec, 0, 1)
    assert list(only_host.accepted["candidate_id"]) == [0] and only_host.rejected.empty


def test_counts_and_columns() -> None:
    spec = p2()
    assert count_candidates(spec) == 1 + 4 * 4
    acc, rej = whole(spec)
    assert len(acc) + len(rej) == 17
    assert tuple(acc.columns) == ACCEPTED_COLUMNS
    assert tuple(rej.columns) == REJECTED_COLUMNS
    assert sorted([*acc["candidate_id"], *rej["candidate_id"]]) == list(range(17))


def test_every_accepted_candidate_passes_the_neutrality_check() -> None:
    for spec in (p2(), p2(compensation="na_content", dopants=["Mg", "Nb", "Al"])):
        acc, _ = whole(spec)
        comps = [parse_formula(f) for f in acc["formula"]]
        elements = sorted({e for c in comps for e in c.elements})
        amounts = np.array([[c.amount(e) for e in elements] for c in comps])
        _, balanced = charge_balance_batch(elements, amounts, allow_peroxide=False)
        assert balanced.all()


@pytest.mark.parametrize("cuts", [[1], [5, 6, 7], [3, 11, 16], list(range(1, 17))])
def test_chunks_are_deterministic_and_union_to_the_whole(cuts: list[int]) -> None:
    spec = p2(codoping={"dopants": ["Ti", "Ru"], "fractions": [0.05, 0.1], "site": "Mn"})
    n = count_candidates(spec)
    acc, rej = whole(spec)
    bounds = [0, *cuts, n]
    parts = [candidate_chunk(spec, a, b) for a, b in itertools.pairwise(bounds)]
    acc_u = pd.concat([p.accepted for p in parts], ignore_index=True)
    rej_u = pd.concat([p.rejected for p in parts], ignore_index=True)
    pd.testing.assert_frame_equal(acc_u, acc, check_dtype=False)
    pd.testing.assert_frame_equal(rej_u, rej, check_dtype=False)
    again = candidate_chunk(spec, 5, 30)
    pd.testing.assert_frame_equal(again.accepted, candidate_chunk(spec, 5, 30).accepted)


def test_chunk_range_is_checked() -> None:
    spec = p2()
    with pytest.raises(ValueError, match=r"range \[0, 99\) outside \[0, 17\)"):
        candidate_chunk(spec, 0, 99)
    empty = candidate_chunk(spec, 4, 4)
    assert empty.accepted.empty and tuple(empty.accepted.columns) == ACCEPTED_COLUMNS


def test_reason_variable_valence_above_range() -> None:
    _, rej = whole(p2())
    mg = row(rej, dopant="Mg", fraction=0.1)
    assert mg["reason"] == "not charge balanced: needs Mn above +4 (+4.29) with Mg+2"
    assert mg["reason_code"] == "not_charge_balanced"
    assert mg["formula"] == "Na0.6Li0.2Mn0.7Mg0.1O2"


def test_reason_variable_valence_below_range() -> None:
    _, rej = whole(p2(compensation={"mode": "variable_valence", "range": [3.5, 4]}))
    mo = row(rej, dopant="Mo", fraction=0.2)  # 0.8 + 1.2 + 0.6 v = 4 -> v = 3.33
    assert mo["reason"] == "not charge balanced: needs Mn below +3.5 (+3.33) with Mo+6"


def test_na_content_compensation_golden_and_negative() -> None:
    acc, rej = whole(p2(compensation="na_content", fractions=[0.1, 0.2, 0.4]))
    # Mg2+ for Mn4+: +2 Na per Mg; Nb5+: -1 Na per Nb
    assert row(acc, dopant="Mg", fraction=0.1)["formula"] == "Na0.8Li0.2Mn0.7Mg0.1O2"
    assert row(acc, dopant="Nb", fraction=0.2)["formula"] == "Na0.4Li0.2Mn0.6Nb0.2O2"
    mo = row(rej, dopant="Mo", fraction=0.4)  # Na 0.6 - 2 * 0.4 = -0.2
    assert mo["reason"] == "Na content would be negative (-0.2)"
    assert mo["reason_code"] == "negative_amount"


def test_vacancy_compensation() -> None:
    acc, rej = whole(p2(compensation={"mode": "vacancy", "site": "O"}, dopants=["Mg", "Nb"]))
    # Mg2+ for Mn4+ leaves O vacancies: O 2 - 0.1 = 1.9
    assert row(acc, dopant="Mg", fraction=0.1)["formula"] == "Na0.6Li0.2Mn0.7Mg0.1O1.9"
    nb = row(rej, dopant="Nb", fraction=0.1)
    assert nb["reason"].startswith("vacancy compensation on the O site cannot balance this dopant")
    assert nb["reason_code"] == "compensation_limit"
    acc_na, rej_na = whole(p2(compensation={"mode": "vacancy", "site": "Na"}, dopants=["Mg", "Nb"]))
    assert row(acc_na, dopant="Nb", fraction=0.2)["formula"] == "Na0.4Li0.2Mn0.6Nb0.2O2"
    assert "would need extra Na" in row(rej_na, dopant="Mg", fraction=0.05)["reason"]


def test_codoping_duplicates_and_second_site() -> None:
    spec = p2(dopants=["Ru", "Ti"], fractions=[0.1], codoping={"dopants": ["Ru", "Ti"], "fractions": [0.1]})
    acc, rej = whole(spec)
    assert row(acc, dopant="Ti", dopant2="Ru")["formula"] == "Na0.6Li0.2Mn0.6Ti0.1Ru0.1O2"
    assert row(rej, dopant="Ru", dopant2="Ru")["reason"] == "co-dopant Ru equals the dopant on the same site"
    assert row(rej, dopant="Ru", dopant2="Ru")["reason_code"] == "duplicate"
    assert row(rej, dopant="Ru", dopant2="Ti")["reason"].startswith("duplicate: the same candidate")
    other = p2(
        dopants=["Ru"], fractions=[0.1], codoping={"dopants": ["Mg"], "fractions": [0.05], "site": "Li"}
    )
    acc2, _ = whole(other)
    mg = row(acc2, dopant="Ru", dopant2="Mg")
    assert mg["formula"] == "Na0.6Li0.15Mg0.05Mn0.7Ru0.1O2"
    assert mg["site2"] == "Li" and mg["fraction2"] == pytest.approx(0.05)


def test_fully_substituted_variable_metal() -> None:
    spec = p2(dopants=["Mg", "Ti"], fractions=[0.8])
    acc, rej = whole(spec)
    assert row(acc, dopant="Ti")["formula"] == "Na0.6Li0.2Ti0.8O2"
    assert row(rej, dopant="Mg")["reason"] == (
        "not charge balanced: Mn fully substituted and the rest is not neutral"
    )


def template_spec(
    formula: str | list[str], variables: dict[str, Any], dopants: list[str], **extra: Any
) -> ScreeningSpec:
    return parse_spec(
        {
            "name": "t",
            "family": extra.pop("family", "halide"),
            "host": extra.pop("host", "Na2ZrCl6"),
            "template": {"formula": formula, "variables": variables},
            "dopants": dopants,
            **extra,
        }
    )


def test_oxychloride_template_golden() -> None:
    spec = template_spec(
        "{x}Na2O2-{M}Cl{v}", {"x": [0.8, 1.0, 1.2]}, ["Hf", "Ta"], family="oxychloride", host="Na2O2-HfCl4"
    )
    acc, rej = whole(spec)
    assert rej.empty
    assert row(acc, dopant="Hf", fraction=0.8)["formula"] == "Na1.6O1.6HfCl4"
    assert row(acc, dopant="Ta", fraction=1.0)["formula"] == "Na2O2TaCl5"
    assert row(acc, dopant="Ta", fraction=1.0)["var_x"] == 1.0
    assert acc.iloc[0]["formula"] == "Na2O2HfCl4"  # host written in its own order, mixture summed


def test_halide_templates_reject_unbalanced_with_the_checker_reason() -> None:
    spec = template_spec(
        ["Na{2+x*(4-v)}Zr{1-x}{M}{x}Cl6", "Na{3-x}{M}{1-x}Zr{x}Cl6"], {"x": [0.1, 0.5]}, ["Y", "Ta"]
    )
    assert count_candidates(spec) == 1 + 2 * 2 * 2
    acc, rej = whole(spec)
    assert row(acc, dopant="Y", fraction=0.1, template="Na{2+x*(4-v)}Zr{1-x}{M}{x}Cl6")["formula"] == (
        "Na2.1Zr0.9Y0.1Cl6"
    )
    assert row(acc, dopant="Y", fraction=0.5, template="Na{3-x}{M}{1-x}Zr{x}Cl6")["formula"] == (
        "Na2.5Y0.5Zr0.5Cl6"
    )
    ta = rej[rej["dopant"] == "Ta"]
    assert len(ta) == 2 and set(ta["formula"]) == {"Na2.9Ta0.9Zr0.1Cl6", "Na2.5Ta0.5Zr0.5Cl6"}
    assert all(
        r.startswith("not charge balanced: ") and "cannot be charge balanced" in r for r in ta["reason"]
    )


def test_template_negative_amount() -> None:
    spec = template_spec("Na{2+x*(4-v)}Zr{1-x}{M}{x}Cl6", {"x": [0.5, 1.2]}, ["Hf"])
    _, rej = whole(spec)
    assert row(rej, fraction=1.2)["reason"] == "Zr content would be negative (-0.2)"


def test_nasicon_two_variables() -> None:
    spec = template_spec(
        "Na{1+x+y*(4-v)}Zr{2-y}{M}{y}Si{x}P{3-x}O12",
        {"x": [2.0], "y": [0.1, 0.2]},
        ["Sc", "Nb"],
        family="nasicon",
        host="Na3Zr2Si2PO12",
    )
    acc, _ = whole(spec)
    assert row(acc, dopant="Sc", fraction2=0.2)["formula"] == "Na3.2Zr1.8Sc0.2Si2PO12"
    assert row(acc, dopant="Nb", fraction2=0.1)["formula"] == "Na2.9Zr1.9Nb0.1Si2PO12"
    assert row(acc, dopant="Nb", fraction2=0.1)["fraction"] == 2.0  # fraction = first variable (x)


def test_electrolyte_conditions_are_empty() -> None:
    spec = template_spec("Na{2+x*(4-v)}Zr{1-x}{M}{x}Cl6", {"x": [0.1]}, ["Y"])
    acc, _ = whole(spec)
    assert acc["cycles"].isna().all() and (acc["working_ion"] == "Na").all()
    assert (acc["compensation"] == "none").all()
