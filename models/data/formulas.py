"""Formula canonicalisation for curation: every raw formula goes through featurize.composition."""

from __future__ import annotations

import pandas as pd

from featurize.composition import Composition, parse_formulas


def clean_formula_text(text: object) -> object:
    """Strip surrounding whitespace (incl. the Kang file's non-breaking spaces) and the literal double
    quotes some Liverpool cells carry around mixture formulas; non-strings are passed on for the parser
    to refuse."""
    if isinstance(text, str):
        cleaned = text.replace("\u00a0", " ").strip()
        if len(cleaned) >= 2 and cleaned[0] == cleaned[-1] == '"':
            cleaned = cleaned[1:-1].strip()
        return cleaned
    return text


def canonicalize(formula_raw: pd.Series) -> pd.DataFrame:
    """Parse each raw formula; columns formula, structure_type, elements ("-"-joined), error ("" if parsed).

    A row that fails keeps formula "" and carries the parser's message in `error`: the caller drops it
    and reports the message (never a silent NaN).
    """
    parsed = parse_formulas([clean_formula_text(t) for t in formula_raw.tolist()])
    formula: list[str] = []
    structure: list[str] = []
    elements: list[str] = []
    error: list[str] = []
    for item in parsed:
        if isinstance(item, Composition):
            formula.append(item.formula)
            structure.append(item.structure_type or "")
            elements.append("-".join(item.elements))
            error.append("")
        else:
            formula.append("")
            structure.append("")
            elements.append("")
            error.append(str(item))
    return pd.DataFrame(
        {"formula": formula, "structure_type": structure, "elements": elements, "error": error},
        index=formula_raw.index,
    )
