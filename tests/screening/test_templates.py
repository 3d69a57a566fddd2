"""The template grammar: terms, coefficients, groups, and expressions limited to arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from screening.templates import TemplateError, parse_expr, parse_template


def amounts(
    text: str, variables: dict[str, float], dopants: dict[str, str] | None = None
) -> dict[str, float]:
    tmpl = parse_template(text, set(variables) - {"v", "v2"})
    els, mat = tmpl.amounts(dopants or {}, variables, 1)
    return {e: round(float(a), 10) for e, a in zip(els, mat[0], strict=True)}


def test_substitution_with_valence_expression() -> None:
    got = amounts("Na{0.6-x*(v-4)}Li0.2Mn{0.8-x}{M}{x}O2", {"x": 0.1, "v": 5}, {"M": "Nb"})
    assert got == {"Na": 0.5, "Li": 0.2, "Mn": 0.7, "Nb": 0.1, "O": 2.0}


def test_mixture_components_are_summed_with_coefficients() -> None:
    assert amounts("{x}Na2O2-{M}Cl{v}", {"x": 0.8, "v": 4}, {"M": "Hf"}) == {
        "Na": 1.6,
        "O": 1.6,
        "Hf": 1.0,
        "Cl": 4.0,
    }
    assert amounts("0.5Na2O-ZrCl4", {}) == {"Na": 1.0, "O": 0.5, "Zr": 1.0, "Cl": 4.0}


def test_groups_multiply_and_repeated_elements_merge() -> None:
    assert amounts("Na3Zr2(SiO4){x}(PO4){3-x}", {"x": 2}) == {"Na": 3, "Zr": 2, "Si": 2, "O": 12, "P": 1}
    got = amounts("Na0.95[Li0.06Mn0.94]{1-x}{M}{x}O2", {"x": 0.1}, {"M": "Ti"})
    assert got == {"Na": 0.95, "Li": 0.054, "Mn": 0.846, "Ti": 0.1, "O": 2.0}
    # a dopant equal to a host element merges into its first occurrence
    assert amounts("Na{1-x}{M}{x}Cl", {"x": 0.2}, {"M": "Na"}) == {"Na": 1.0, "Cl": 1.0}


def test_vectorised_evaluation() -> None:
    tmpl = parse_template("Zr{1-x}{M}{x}Cl6", {"x"})
    els, mat = tmpl.amounts({"M": "Y"}, {"x": np.array([0.1, 0.2, 0.3])}, 3)
    assert els == ("Zr", "Y", "Cl")
    np.testing.assert_allclose(mat, [[0.9, 0.1, 6], [0.8, 0.2, 6], [0.7, 0.3, 6]])


def test_placeholders_and_names() -> None:
    tmpl = parse_template("Na{1+x}{M}{y}{M2}{z}O{2+v2}", {"x", "y", "z"})
    assert tmpl.placeholders == ("M", "M2")
    assert tmpl.names == {"x", "y", "z", "v2"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Na{x}Qq2", r"unknown element 'Qq'"),
        ("Na{y}", r"unknown variable 'y'"),
        ("Na{x", r"unclosed"),
        ("Na(Cl", r"expected '\)'"),
        ("Na{__import__('os')}", r"only \+ - \* / and parentheses|unknown variable"),
        ("Na{x**2}", r"only \+ - \* / and parentheses"),
        ("Na{'a'}", r"is not a number"),
        ("Na$2", r"unexpected character '\$'"),
        ("", r"empty"),
        ("Na2{X}", r"not a placeholder"),
        ("Na{X}", r"unknown variable 'X'"),
        ("Na{M2}O", r"uses \{M2\} without \{M\}"),
        ("NaO{v}", r"uses valence v without \{M\}"),
    ],
)
def test_bad_templates(text: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        parse_template(text, {"x"})


def test_bad_variable_names() -> None:
    with pytest.raises(TemplateError, match="must be lower-case and not v/v2"):
        parse_template("Na{v}", {"v"})
    with pytest.raises(TemplateError, match="not valid arithmetic"):
        parse_expr("1+", {"x"})
