"""The fast parse path (flat formulas, no pymatgen objects) equals the pymatgen reference path exactly:
same formula string, elements, amounts (value and type), structure type, key and hash; same errors."""

from __future__ import annotations

import copy
import csv
import gc
import pickle
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymatgen.core import Composition as PmgComposition

from featurize import composition as comp
from featurize.composition import Composition, CompositionError, parse_formula, parse_formulas
from featurize.elements import ELEMENTS

CURATED = Path(__file__).resolve().parents[2] / "data" / "curated"

# Elements that exercise the ordering corner cases: NaN electronegativity (He, Ne, Ar), equal Pauling X
# (e.g. C/S/I 2.55/2.58/2.66, Co/Si/Sb ... ties resolved alphabetically) and polyanion formers.
_COMMON = ["Na", "Li", "K", "Mg", "Ca", "Mn", "Ni", "Co", "Fe", "Cu", "Ti", "Zr", "Ru", "Nb", "Mo", "W"]
_ANIONS = ["O", "F", "Cl", "S", "P", "Si", "B", "C", "N", "Se", "I", "H"]


def _amount_text(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.2:
        return ""
    if kind < 0.45:
        return str(rng.randint(1, 12))
    if kind < 0.55:
        return f"{rng.randint(1, 6)}.0"
    if kind < 0.65:  # more decimals than the canonical rounding keeps (rounding ties, 1e-9 noise)
        return f"{rng.uniform(0.0001, 3):.{rng.randint(9, 12)}f}".rstrip("0") or "1"
    return f"{rng.uniform(0.001, 4):.{rng.randint(1, 6)}f}"


def _random_flat(rng: random.Random) -> str:
    n = rng.choice([1, 2, 2, 3, 3, 4, 5, 6])
    pool = ELEMENTS if rng.random() < 0.3 else _COMMON + _ANIONS
    syms = [rng.choice(pool) for _ in range(n)]
    if rng.random() < 0.5:
        syms.append(rng.choice(_ANIONS))
    parts = []
    for s in syms:
        amount = _amount_text(rng)
        if amount and float(amount) == 0:
            amount = "1"
        parts.append(s + amount)
    return "".join(parts)


def _assert_same(fast: Composition, ref: Composition) -> None:
    assert fast.formula == ref.formula
    assert fast.elements == ref.elements
    assert fast.amounts == ref.amounts
    assert [type(a) for a in fast.amounts] == [type(a) for a in ref.amounts]
    assert fast.structure_type == ref.structure_type
    assert fast.fractions == ref.fractions
    assert fast.key == ref.key and hash(fast) == hash(ref) and fast == ref


def _outcome(text: str, *, reference: bool) -> Composition | str:
    try:
        return comp._parse(text, {}, reference=reference)
    except comp._Problem as exc:
        return f"error: {exc}"


def _check_text(text: str) -> None:
    fast, ref = _outcome(text, reference=False), _outcome(text, reference=True)
    if isinstance(ref, str) or isinstance(fast, str):
        assert fast == ref, text
    else:
        _assert_same(fast, ref)


@pytest.mark.parametrize(
    "text",
    [
        "Na0.6Li0.2Mn0.7Ru0.1O2",
        "Na0.6Li0.2Mn0.8O2",
        "LiFePO4",
        "Li4Fe4P4O16",  # gcd 4
        "Na3Zr2Si2PO12",  # NASICON
        "Na2SO4",  # polyanion suffix candidate
        "Fe2O3",
        "O2",
        "O4",  # special formula O2, factor 2
        "H2O2",
        "Cl2",
        "He",
        "ArNe2Xe",  # NaN electronegativities
        "NaNa0.5O",  # repeated element
        "Fe0.5O0.5",
        "Na1.00000000001O",  # rounds to an integer
        "Na2.",
        "Na.5Cl",
    ],
)
def test_golden_flat_formulas_equal_reference(text: str) -> None:
    assert comp._flat_amounts(text) is not None  # the fast path is taken
    _check_text(text)
    assert parse_formula(text).formula == PmgComposition(text).reduced_formula


def test_random_flat_formulas_equal_reference() -> None:
    rng = random.Random(20261122)
    texts = {_random_flat(rng) for _ in range(4000)}
    for text in sorted(texts):
        assert comp._flat_amounts(text) is not None, text
        _check_text(text)
        # the general path (a mixture with coefficient 1) sums to the same amounts as the flat path
        general = comp._parse("1" + text, {})
        _assert_same(comp._parse(text, {}), general)


def test_screening_style_formulas_equal_reference() -> None:
    rng = random.Random(7)
    dopants = ["Mg", "Al", "Ti", "Fe", "Co", "Ni", "Cu", "Zn", "Zr", "Nb", "Mo", "Ru", "Sn", "W", "Ta"]
    for _ in range(2000):
        x = round(rng.uniform(0.0, 0.3), rng.randint(2, 8))
        if x == 0:
            continue
        m = rng.choice(dopants)
        text = f"Na0.6Li0.2Mn{round(0.8 - x, 8)}{m}{x}O2"
        _check_text(text)


def test_fallbacks_keep_general_path_errors() -> None:
    for text, problem in [
        ("NaXxO2", "unknown element Xx"),
        ("Na0O2", "zero amount"),
        ("Nabo2", "unknown element Nabo"),
        ("Na-", "empty mixture component"),
    ]:
        assert comp._flat_amounts(text) is None
        with pytest.raises(CompositionError, match=problem):
            parse_formula(text)
    # vacancies are not elements: the flat path hands them to the general path, which drops them
    assert comp._flat_amounts("NaVac0.1MnO2") is None
    assert parse_formula("NaVac0.1MnO2") == parse_formula("NaMnO2")


def test_reduce_equals_pymatgen_on_random_amounts() -> None:
    rng = random.Random(3)
    for _ in range(3000):
        syms = rng.sample(ELEMENTS, rng.randint(1, 6))
        if rng.random() < 0.5:
            amounts = {s: float(rng.randint(1, 24)) for s in syms}
        else:
            amounts = {s: round(rng.uniform(1e-8, 10), rng.randint(0, 8)) or 1.0 for s in syms}
        assert comp._reduce(amounts) == comp._reduce_reference(amounts), amounts


def test_from_amounts_equals_reference() -> None:
    rng = random.Random(11)
    for _ in range(2000):
        syms = rng.sample(ELEMENTS, rng.randint(1, 5))
        amounts: dict[str, float] = {
            s: (rng.randint(1, 9) if rng.random() < 0.3 else rng.uniform(0.001, 5)) for s in syms
        }
        fast = Composition.from_amounts(amounts)
        ref = comp._canonical(dict(amounts), None, reference=True)
        _assert_same(fast, ref)


def test_curated_formulas_equal_reference() -> None:
    texts: set[str] = set()
    for path in sorted(CURATED.glob("*.csv")):
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                for column in ("formula_raw", "formula", "formula_charge_raw", "formula_charge"):
                    if row.get(column):
                        texts.add(row[column])
    assert len(texts) > 1000
    for text in sorted(texts):
        _check_text(text)


_PREFIXES = ["P2", "O3", "P3", "O'3", "P2/O3", "OP4", "T", "beta", "beta''", "Alpha", "L", "m", "a"]


def test_prefixed_flat_formulas_take_the_fast_path_and_equal_the_general_one() -> None:
    # reference=True skips both fast paths: prefix regex, mixture split, token scan, pymatgen's reduction
    rng = random.Random(20261202)
    texts = sorted({_random_flat(rng) for _ in range(1500)})
    for i, text in enumerate(texts):
        prefixed = f"{_PREFIXES[i % len(_PREFIXES)]}-{text}"
        _check_text(prefixed)
    assert comp._flat_with_prefix("P2-Na0.67Mn0.6Ni0.3Fe0.1O2") is not None
    assert comp._flat_with_prefix("O3-NaMnO2") is not None  # integer amounts: through _flat_amounts
    assert parse_formula("P2-Na0.67MnO2").structure_type == "P2"
    assert parse_formula("beta''-Na1.67Mg0.67Al10.33O17").structure_type == "beta''"
    for text in ["P2O5-Li2O", "Na2O-P2O5", "P2-", "P2- Na0.67MnO2", "P2-Na0.67MnO2-Li2O", "X2-NaCl"]:
        assert comp._flat_with_prefix(text) is None, text
        _check_text(text)


@pytest.mark.parametrize(
    "text",
    [
        "Na1.2.3Cl",
        "Na1e-3Cl1e-3",
        "Na2.O",
        "Na1/2Cl",
        "Na 2Cl",
        "Na2\u0663Cl",
        "NaCl0",
        "Na1e9Cl",
        "Na1e-9Cl",
    ],
)
def test_flat_amount_texts_validate_like_the_general_path(text: str) -> None:
    _check_text(text)


def test_bracketed_amounts_equal_pymatgen_composition() -> None:
    rng = random.Random(11)
    for _ in range(1500):
        inner = "".join(f"{rng.choice(_COMMON)}{_amount_text(rng)}" for _ in range(rng.randint(1, 3)))
        outer = f"{rng.choice(_COMMON)}{_amount_text(rng)}"
        mult = rng.choice(["", "2", "0.5", "3.25", "1e-2"])
        brackets = rng.choice(["()", "[]", "{}"])
        text = f"{outer}{brackets[0]}{inner}{brackets[1]}{mult}{rng.choice(_ANIONS)}{_amount_text(rng)}"
        try:
            want = PmgComposition(text.translate(comp._BRACKETS)).get_el_amt_dict()
        except (ValueError, KeyError):
            continue
        assert comp._pymatgen_amounts(text.translate(comp._BRACKETS)) == want, text
        assert list(comp._pymatgen_amounts(text.translate(comp._BRACKETS))) == list(want), text


# Hypothesis: formulas shaped like the fast path's input (and its near misses: repeated elements,
# unknown two-letter symbols, integer amounts, prefixes, zero amounts) give the reference path's result.
_SYMBOLS = st.sampled_from([*_COMMON, *_ANIONS, "He", "Ar", "Xe", "Xx", "Xy", "D", "T", "Vac"])
_AMOUNTS = st.one_of(
    st.just(""),
    st.integers(0, 12).map(str),
    st.decimals(min_value="0.00001", max_value="20", places=5).map(lambda d: str(d).rstrip("0")),
    st.floats(1e-9, 50, allow_nan=False).map(repr),
)
_FLAT = st.lists(st.tuples(_SYMBOLS, _AMOUNTS), min_size=1, max_size=8).map(
    lambda toks: "".join(s + a for s, a in toks)
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_FLAT, st.sampled_from(["", "P2-", "O3-", "beta''-", "X2-"]))
def test_hypothesis_flat_formulas_equal_the_reference_path(body: str, prefix: str) -> None:
    comp.parse_cache_clear()
    _check_text(prefix + body)


@settings(max_examples=300, deadline=None)
@given(_FLAT)
def test_hypothesis_fast_formula_equals_pymatgen_reduction(text: str) -> None:
    try:
        ours = parse_formula(text)
    except CompositionError:
        return
    want = PmgComposition(ours.as_dict()).get_reduced_formula_and_factor()[0]
    assert ours.formula == want, text


def test_fast_path_composition_is_a_frozen_value() -> None:
    a = parse_formula("Na0.67Mn0.6Ni0.3Fe0.1O2")
    assert a._formula is None  # the fast path leaves the formula text to first use
    want = PmgComposition("Na0.67Mn0.6Ni0.3Fe0.1O2").reduced_formula
    assert a.formula == want == "Na0.67Mn0.6Fe0.1Ni0.3O2" and a._formula == a.formula
    with pytest.raises(AttributeError):
        a.formula = "NaCl"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        a.elements = ("Na",)  # type: ignore[misc]
    b = pickle.loads(pickle.dumps(parse_formula("P2-Na0.67Mn0.6Ni0.3Fe0.1O2")))
    assert b.structure_type == "P2" and b.formula == a.formula and b.key[:2] == a.key[:2]
    assert copy.deepcopy(a) is a and copy.copy(a) is a
    assert repr(a).startswith(
        "Composition(formula='Na0.67Mn0.6Fe0.1Ni0.3O2', elements=('O', 'Na', 'Mn', 'Fe', 'Ni')"
    )
    assert not hasattr(a, "__dict__")


def test_parse_formulas_restores_the_collector_state() -> None:
    assert gc.isenabled()
    out = parse_formulas(["Na0.5Cl0.5", "Na2Xy", 3])
    assert gc.isenabled()
    assert isinstance(out[0], Composition) and isinstance(out[1], CompositionError)
    assert isinstance(out[2], CompositionError)
    gc.disable()
    try:
        parse_formulas(["NaCl"])
        assert not gc.isenabled()  # a caller's choice is kept
    finally:
        gc.enable()


class _DataclassEraPickle:
    """Pickles like the former dataclass Composition: a bare new object, then its __dict__ as state."""

    def __reduce_ex__(self, protocol: object) -> tuple[object, ...]:
        state = {"formula": "NaCl", "elements": ("Na", "Cl"), "amounts": (1.0, 1.0), "structure_type": None}
        state["_fractions"] = (0.5, 0.5)
        return (object.__new__, (Composition,), state)  # what __newobj__ unpickles to


def test_a_pickle_of_the_former_dataclass_still_loads() -> None:
    back = pickle.loads(pickle.dumps(_DataclassEraPickle()))
    assert isinstance(back, Composition) and back == parse_formula("NaCl")
    assert back.formula == "NaCl" and back.amounts == (1.0, 1.0) and back.structure_type is None
