"""Composition parsing: golden parses, polymorph-prefix rule, invariances, every refusal path."""

from __future__ import annotations

import math
import pickle

import pytest
from pymatgen.core import Composition as PmgComposition

from featurize import elements as el
from featurize.composition import (
    AMOUNT_TOLERANCE,
    MAX_FORMULA_LENGTH,
    Composition,
    CompositionError,
    parse_formula,
    parse_formulas,
)


def amounts(c: Composition) -> dict[str, float]:
    return c.as_dict()


# ------------------------------------------------------------------------------------------ elements


def test_element_table_is_h_to_lr_and_matches_pymatgen() -> None:
    from pymatgen.core import Element

    assert el.Z_MAX == 103 and len(el.ELEMENTS) == 103 and len(set(el.ELEMENTS)) == 103
    assert el.ELEMENTS[0] == "H" and el.ELEMENTS[10] == "Na" and el.ELEMENTS[-1] == "Lr"
    for z, sym in enumerate(el.ELEMENTS, start=1):
        assert z == Element(sym).Z
        assert el.atomic_number(sym) == z and el.symbol(z) == sym and el.is_element(sym)


@pytest.mark.parametrize("bad", ["Xx", "Xy", "X", "D", "T", "na", "NA", "Rf", "Og", "", None, 11])
def test_non_elements(bad: object) -> None:
    assert not el.is_element(bad)
    with pytest.raises(ValueError, match="unknown element"):
        el.atomic_number(bad)  # type: ignore[arg-type]


def test_symbol_range() -> None:
    for bad in (0, 104, -1, True):
        with pytest.raises(ValueError):
            el.symbol(bad)


def test_groups_are_consistent() -> None:
    groups = [
        getattr(el, name) for name in el.__all__ if name.isupper() and name not in ("ELEMENTS", "Z_MAX")
    ]
    for g in groups:
        assert isinstance(g, frozenset) and g <= set(el.ELEMENTS)
    assert len(el.TRANSITION_METALS_3D) == len(el.TRANSITION_METALS_4D) == 10
    assert len(el.TRANSITION_METALS_5D) == 9  # Hf..Hg: La is counted with the lanthanides
    assert {"Mn", "Fe", "Co", "Ni", "Cu"} <= el.TRANSITION_METALS_3D
    assert {"Zr", "Nb", "Mo", "Ru"} <= el.TRANSITION_METALS_4D and {
        "Hf",
        "Ta",
        "W",
    } <= el.TRANSITION_METALS_5D
    assert len(el.LANTHANIDES) == 15 and "La" in el.LANTHANIDES and "Lu" in el.LANTHANIDES
    assert el.ALKALI_METALS.isdisjoint(el.ALKALINE_EARTH_METALS)
    assert {"F", "Cl", "Br", "I", "At"} == el.HALOGENS
    assert "Na" not in el.RADIOACTIVE and {"Tc", "Pm", "U"} <= el.RADIOACTIVE


# ------------------------------------------------------------------------------------ golden parses


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Na0.6Li0.2Mn0.7Ru0.1O2", {"Li": 0.2, "O": 2, "Na": 0.6, "Mn": 0.7, "Ru": 0.1}),
        ("Na[Li1/3Ru2/3]O2", {"Li": 1 / 3, "O": 2, "Na": 1, "Ru": 2 / 3}),
        ("Na{Li1/3Ru2/3}O2", {"Li": 1 / 3, "O": 2, "Na": 1, "Ru": 2 / 3}),
        ("Na3Zr2(SiO4)2(PO4)", {"O": 12, "Na": 3, "Si": 2, "P": 1, "Zr": 2}),
        ("Na3Zr2[(SiO4)2(PO4)]", {"O": 12, "Na": 3, "Si": 2, "P": 1, "Zr": 2}),
        ("Na2O2-HfCl4", {"O": 2, "Na": 2, "Cl": 4, "Hf": 1}),
        ("0.8Na2O2-HfCl4", {"O": 1.6, "Na": 1.6, "Cl": 4, "Hf": 1}),
        ("1/2Na2O2-HfCl4", {"O": 1, "Na": 1, "Cl": 4, "Hf": 1}),
        ("Na2O2·HfCl4", {"O": 2, "Na": 2, "Cl": 4, "Hf": 1}),
        ("Na2O2 • HfCl4", {"O": 2, "Na": 2, "Cl": 4, "Hf": 1}),
        ("Na2O2+HfCl4", {"O": 2, "Na": 2, "Cl": 4, "Hf": 1}),
        ("Na2O2 – HfCl4", {"O": 2, "Na": 2, "Cl": 4, "Hf": 1}),
        ("Na₃Zr₂Si₂PO₁₂", {"O": 12, "Na": 3, "Si": 2, "P": 1, "Zr": 2}),
        ("\u00a0Na3Zr2Si2PO12\u00a0 ", {"O": 12, "Na": 3, "Si": 2, "P": 1, "Zr": 2}),
        ("\tNa3 Zr2 Si2 P O12\n", {"O": 12, "Na": 3, "Si": 2, "P": 1, "Zr": 2}),
        ("NaN", {"N": 1, "Na": 1}),
        ("Na3N", {"N": 1, "Na": 3}),
        ("P2O5-Li2O", {"Li": 1, "O": 3, "P": 1}),  # Li2P2O6 reduced: a mixture, not a polymorph
        ("Na[□0.1Li0.2]MnO2", {"Li": 0.2, "O": 2, "Na": 1, "Mn": 1}),
        ("Na0.9Vac0.1MnO2", {"O": 2, "Na": 0.9, "Mn": 1}),
        ("2NaCl", {"Na": 1, "Cl": 1}),
        (".5Na2O-ZrO2", {"O": 2.5, "Na": 1, "Zr": 1}),
    ],
)
def test_golden_parses(text: str, expected: dict[str, float]) -> None:
    c = parse_formula(text)
    assert c.structure_type is None
    got = amounts(c)
    assert set(got) == set(expected)
    for k, v in expected.items():
        assert got[k] == pytest.approx(v, abs=2 * AMOUNT_TOLERANCE)
    assert math.isclose(sum(c.fractions), 1.0, abs_tol=1e-12)
    assert [el.atomic_number(e) for e in c.elements] == sorted(el.atomic_number(e) for e in c.elements)


def test_formula_is_pymatgen_reduced_formula_of_the_sum() -> None:
    assert parse_formula("Na3Zr2(SiO4)2(PO4)").formula == "Na3Zr2Si2PO12"
    assert parse_formula("Fe2O2").formula == "FeO"
    assert parse_formula("Na2O2-HfCl4").formula == PmgComposition("Na2O2HfCl4").reduced_formula
    assert parse_formula("P2-Na0.67MnO2").formula == PmgComposition("Na0.67MnO2").reduced_formula


@pytest.mark.parametrize(
    ("text", "variables", "expected"),
    [
        ("xNa2O2-HfCl4", {"x": 0.8}, {"O": 1.6, "Na": 1.6, "Cl": 4, "Hf": 1}),
        ("(1-x)Na2O2-xHfCl4", {"x": 0.25}, {"O": 1.5, "Na": 1.5, "Cl": 1, "Hf": 0.25}),
        ("0.5xNa2O2-HfCl4", {"x": 2}, {"O": 2, "Na": 2, "Cl": 4, "Hf": 1}),
        # (1-x) = 0 drops HfCl4; NaO is reduced to Na2O2 by pymatgen (it keeps peroxide formulas)
        ("(x/2)Na2O2-(1-x)HfCl4", {"x": 1.0}, {"O": 2, "Na": 2}),
        ("yNa2O2-HfCl4", {"x": 5, "y": 1}, {"O": 2, "Na": 2, "Cl": 4, "Hf": 1}),
    ],
)
def test_variables(text: str, variables: dict[str, float], expected: dict[str, float]) -> None:
    got = amounts(parse_formula(text, variables))
    assert set(got) == set(expected)
    for k, v in expected.items():
        assert got[k] == pytest.approx(v, abs=2 * AMOUNT_TOLERANCE)


def test_variables_are_part_of_the_cache_key() -> None:
    a = parse_formula("xNa2O2-HfCl4", {"x": 0.5})
    b = parse_formula("xNa2O2-HfCl4", {"x": 1.0})
    assert a != b and b == parse_formula("Na2O2-HfCl4")


# ----------------------------------------------------------------------------------- polymorph rule


@pytest.mark.parametrize(
    ("text", "stype", "formula"),
    [
        ("P2-Na0.67MnO2", "P2", "Na0.67MnO2"),
        ("O3-NaFeO2", "O3", "NaFeO2"),
        ("P3-Na0.67Ni0.33Mn0.67O2", "P3", "Na0.67Ni0.33Mn0.67O2"),
        ("O'3-NaMnO2", "O'3", "NaMnO2"),
        ("O′3-NaMnO2", "O'3", "NaMnO2"),  # typographic prime
        ("P'2-Na0.67MnO2", "P'2", "Na0.67MnO2"),
        ("OP4-NaMnO2", "OP4", "NaMnO2"),
        ("T-NaFeO2", "T", "NaFeO2"),
        ("O2-LiCoO2", "O2", "LiCoO2"),  # O2-type is a real stacking: documented choice
        ("P2/O3-Na0.8MnO2", "P2/O3", "Na0.8MnO2"),
        ("alpha-NaFeO2", "alpha", "NaFeO2"),
        ("Alpha-NaFeO2", "alpha", "NaFeO2"),
        ("α-NaFeO2", "alpha", "NaFeO2"),
        ("beta-NaFeO2", "beta", "NaFeO2"),
        ("β-NaFeO2", "beta", "NaFeO2"),
        ("gamma-NaFeO2", "gamma", "NaFeO2"),
        ("β''-Al2O3", "beta''", "Al2O3"),
        ("β″-Al2O3", "beta''", "Al2O3"),
        ("P2-type Na0.67MnO2", "P2", "Na0.67MnO2"),
        (" P2 - Na0.67MnO2 ", "P2", "Na0.67MnO2"),
        ("P2–Na0.67MnO2", "P2", "Na0.67MnO2"),  # en dash
        ("P2-Na0.67MnO2-0.1NaF", "P2", "Na0.77MnO2F0.1"),  # prefix, then a mixture
    ],
)
def test_polymorph_prefix(text: str, stype: str, formula: str) -> None:
    c = parse_formula(text)
    assert c.structure_type == stype
    plain = parse_formula(formula)
    assert c.elements == plain.elements and c.amounts == plain.amounts
    assert "P" not in c.elements or "P" in plain.elements  # never diphosphorus from "P2-"


@pytest.mark.parametrize(
    ("text", "elements"),
    [
        ("P2O5-Li2O", ("Li", "O", "P")),  # P2O5 is not exactly a stacking token -> mixture
        ("P2S5-Na2S", ("Na", "P", "S")),
        ("O2Na", ("O", "Na")),  # no dash: plain formula
        ("Ti2-O3", ("O", "Ti")),  # not a stacking token -> mixture of Ti2 and O3
        ("P-NaCl", ("Na", "P", "Cl")),  # P without a digit is phosphorus
    ],
)
def test_not_a_polymorph_prefix(text: str, elements: tuple[str, ...]) -> None:
    c = parse_formula(text)
    assert c.structure_type is None and c.elements == elements


def test_structure_type_is_part_of_identity_and_label_round_trips() -> None:
    p2 = parse_formula("P2-Na0.67MnO2")
    assert p2 != parse_formula("Na0.67MnO2") and p2 != parse_formula("O3-Na0.67MnO2")
    assert str(p2) == p2.label == "P2-" + p2.formula
    for text in ["P2-Na0.67MnO2", "O'3-NaMnO2", "β''-Al2O3", "Na2O2-HfCl4", "Na[Li1/3Ru2/3]O2", "α-NaFeO2"]:
        c = parse_formula(text)
        assert parse_formula(c.label) == c


# -------------------------------------------------------------------------------------- invariances


def test_scale_invariance_and_hash() -> None:
    a, b, c = parse_formula("FeO"), parse_formula("Fe0.5O0.5"), parse_formula("Fe2O2")
    assert a == b == c and hash(a) == hash(b) == hash(c) and len({a, b, c}) == 1
    assert a.fractions == pytest.approx((0.5, 0.5))
    assert parse_formula("Na1.5ZrSiP0.5O6") == parse_formula("Na3Zr2Si2PO12")
    assert parse_formula("Na2O2-HfCl4") == parse_formula("Na2HfO2Cl4") == parse_formula("HfCl4-Na2O2")


def test_order_and_grouping_invariance() -> None:
    ref = parse_formula("Na3Zr2Si2PO12")
    for text in ["Zr2Na3P(SiO4)2O4", "Na3Zr2(SiO4)2PO4", "O12PSi2Zr2Na3"]:
        assert parse_formula(text) == ref


def test_tolerance_makes_canonicalisation_stable() -> None:
    a = parse_formula("Na[Li1/3Ru2/3]O2")
    b = parse_formula("NaLi0.333333333333Ru0.666666666667O2")
    assert a == b and a.amounts == b.amounts


def test_value_object() -> None:
    c = parse_formula("Na0.67MnO2")
    with pytest.raises(AttributeError):
        c.formula = "x"  # type: ignore[misc]
    assert c.to_pymatgen() == PmgComposition("Na0.67MnO2")
    assert c.element_fraction("Mn") == pytest.approx(1 / 3.67)
    assert c.element_fraction("Li") == 0.0 and c.amount("O") == 2.0
    with pytest.raises(ValueError):
        c.element_fraction("Xx")
    assert pickle.loads(pickle.dumps(c)) == c
    assert Composition.from_amounts({"Mn": 1, "O": 2, "Na": 0.67}) == c
    assert c != "Na0.67MnO2"


def test_from_amounts_refuses() -> None:
    with pytest.raises(CompositionError, match="unknown element Xx"):
        Composition.from_amounts({"Xx": 1.0})
    with pytest.raises(CompositionError, match="positive"):
        Composition.from_amounts({"Na": 0.0, "Cl": 1.0})
    with pytest.raises(CompositionError, match="empty"):
        Composition.from_amounts({})


def test_parse_agrees_with_pymatgen_on_plain_formulas() -> None:
    for text in ["LiFePO4", "Na3V2(PO4)3", "Na2Fe2(SO4)3", "NaCoO2", "Li7La3Zr2O12", "Na11Sn2PS12"]:
        mine = parse_formula(text).to_pymatgen()
        assert mine.almost_equals(PmgComposition(text).reduced_composition, rtol=0, atol=1e-9)


# ------------------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Na2XyO3", "unknown element Xy"),
        ("Xx", "unknown element Xx"),
        ("NaXO2", "unknown element X"),
        ("D2O", "unknown element D"),
        ("NaOg", "unknown element Og"),
        ("Na0O2", "zero amount"),
        ("Na2(SiO4)0", "zero amount"),
        ("Na1/0O2", "division by zero"),
        ("0Na2O2-HfCl4", "zero coefficient"),
        ("NaO-1", "amounts must be positive"),
        ("-NaCl", "empty mixture component"),
        ("Na2O2--HfCl4", "empty mixture component"),
        ("Na2O2-", "empty mixture component"),
        ("", "empty formula"),
        ("   \u00a0", "empty formula"),
        ("Na(SiO4", "unbalanced brackets"),
        ("Na)O", "unbalanced brackets"),
        ("Na[Li(Ru]O2)", "unbalanced brackets"),
        ("Na2()O", "empty brackets"),
        ("na2o", "capital letter"),
        ("NaCl!", "unexpected character '!'"),
        ("Na2O;DROP TABLE", "unexpected character ';'"),
        ("1.5", "has no formula"),
        ("O3-", "empty mixture component"),
        ("xNa2O2-HfCl4", "variable 'x' has no value"),
        ("(1-x)Na2O2-HfCl4", "variable 'x' has no value"),
        ("Na2O2-(x+)HfCl4", "cannot read coefficient"),
        ("□", "no elements"),
        ("/3Na", "unexpected character '/'"),
    ],
)
def test_refusals_name_the_input(text: str, problem: str) -> None:
    with pytest.raises(CompositionError) as info:
        parse_formula(text)
    msg = str(info.value)
    assert msg.startswith(f'"{text}": ') and problem in msg
    assert info.value.text == text and problem in info.value.problem


def test_exact_message_for_unknown_element() -> None:
    with pytest.raises(CompositionError) as info:
        parse_formula("Na2XyO3")
    assert str(info.value) == '"Na2XyO3": unknown element Xy'


def test_negative_coefficient_from_variables() -> None:
    with pytest.raises(CompositionError, match=r"must be >= 0"):
        parse_formula("(1-x)Na2O2-HfCl4", {"x": 2})


@pytest.mark.parametrize("bad_vars", [{"x": float("nan")}, {"x": True}, {"X": 1.0}, {"x": "0.5"}])
def test_bad_variables(bad_vars: dict[str, object]) -> None:
    with pytest.raises(CompositionError, match=r'^"xNa2O2-HfCl4": variable'):
        parse_formula("xNa2O2-HfCl4", bad_vars)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [None, float("nan"), 1.5, 3, b"NaCl", ["NaCl"], True])
def test_non_strings(bad: object) -> None:
    with pytest.raises(CompositionError, match="not a formula string") as info:
        parse_formula(bad)
    assert str(info.value).startswith(repr(bad))


def test_absurd_length() -> None:
    text = "Na" * (MAX_FORMULA_LENGTH // 2 + 1)
    with pytest.raises(CompositionError, match="too long") as info:
        parse_formula(text)
    assert str(info.value).startswith('"NaNaNa') and len(str(info.value)) < 200
    assert parse_formula("Na" * (MAX_FORMULA_LENGTH // 2)).elements == ("Na",)


def test_error_pickles_with_its_fields() -> None:
    with pytest.raises(CompositionError) as info:
        parse_formula("Na2XyO3")
    back = pickle.loads(pickle.dumps(info.value))
    assert str(back) == str(info.value) and back.text == "Na2XyO3" and isinstance(back, ValueError)


def test_cached_errors_are_fresh_exceptions() -> None:
    errs = []
    for _ in range(3):
        with pytest.raises(CompositionError) as info:
            parse_formula("Na2XyO3")
        errs.append(info.value)
    assert errs[0] is not errs[1]


# --------------------------------------------------------------------------------------------- batch


def test_parse_formulas_never_raises_and_keeps_order() -> None:
    rows: list[object] = ["NaCl", None, "Na2XyO3", float("nan"), "NaN", "", "P2-Na0.67MnO2", 7, "NaCl"]
    out = parse_formulas(rows)
    assert len(out) == len(rows)
    kinds = [isinstance(r, Composition) for r in out]
    assert kinds == [True, False, False, False, True, False, True, False, True]
    assert out[0] == out[8]
    err = out[2]
    assert isinstance(err, CompositionError) and str(err) == '"Na2XyO3": unknown element Xy'
    assert all(isinstance(r, Composition | CompositionError) for r in out)


def test_parse_formulas_with_variables() -> None:
    out = parse_formulas(["xNa2O2-HfCl4", "Na2O2-HfCl4"], variables={"x": 1})
    assert out[0] == out[1]


def test_flat_fast_path_matches_pymatgen_on_random_formulas() -> None:
    import random

    rnd = random.Random(5)
    syms = ["Na", "Li", "Mn", "Ni", "Fe", "O", "Cl", "Zr", "P", "S", "N", "Hf", "Ru"]
    for _ in range(300):
        parts = [f"{rnd.choice(syms)}{rnd.choice(['', '2', '0.5', '1.25', '3', '0.05'])}" for _ in range(5)]
        text = "".join(parts)
        ref = PmgComposition(text)
        mine = parse_formula(text)
        assert mine.formula == ref.reduced_formula
        assert mine.to_pymatgen().almost_equals(ref.reduced_composition, rtol=0, atol=1e-8)
