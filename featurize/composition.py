"""One place that turns a formula string into a canonical composition.

Grammar (what battery researchers write), applied in this order:

1. Text hygiene: Unicode NFKC (subscript digits "Na₃" -> "Na3", non-breaking and other odd spaces ->
   spaces), dash look-alikes ("–", "—", "−") -> "-", primes ("′", "’") -> "'", middle dots ("·", "•",
   "∙", "⋅") -> mixture separator; leading/trailing whitespace is stripped, inner whitespace ignored.
2. Polymorph prefix. The text before the FIRST "-" is a structure type, not a mixture component, iff
   it is exactly a stacking token or a Greek-letter phase name, and a formula follows:
   - stacking token: ``O|P`` with an optional prime and one digit (``P2``, ``O3``, ``P3``, ``O'3``,
     ``P'2``, ``O2``), ``OP`` + digit (``OP4``), ``T`` with optional digit; several joined by "/"
     for intergrowths (``P2/O3``);
   - Greek phase: ``alpha``, ``beta``, ``gamma``, ``delta``, ``epsilon`` (any case) or ``α β γ δ ε``,
     optionally primed (``beta''``, ``β''``: beta''-alumina). Stored by name: ``"β-"`` -> ``"beta"``.
   ``P2-type Na0.67MnO2`` is accepted too. So ``P2-Na0.67MnO2`` is P2-type Na0.67MnO2 (never
   diphosphorus + Na0.67MnO2), while ``P2O5-Li2O`` is a mixture ("P2O5" is not a stacking token).
   Consequence, by design: ``O2-LiCoO2`` is O2-type LiCoO2 (a real polymorph), not oxygen + LiCoO2.
3. Mixture: the rest is split at top-level "-", "+", "@" (endohedral: ``Y3N@C80``) and middle dots
   (hydrates: ``CuSO4·5H2O``) into components, each with an
   optional coefficient: a number (``0.8``, ``1/3``), a variable (``x``, needs ``variables={"x": ..}``),
   a number times a variable (``0.5x``) or a parenthesised expression of those (``(1-x)``). The
   composition is the coefficient-weighted SUM of the components (``0.8Na2O2-HfCl4`` =
   Na1.6O1.6 + HfCl4). A coefficient may evaluate to 0 through variables (that component drops out,
   so ``xA-(1-x)B`` works at x=0 and x=1); a literal 0 or any negative coefficient is refused.
4. Inside a component: square and curly brackets are parentheses (``Na[Li1/3Ru2/3]O2``); a rational
   amount ``a/b`` becomes the decimal ``a÷b``; vacancy markers ``□`` / ``Vac`` (with their amount) are
   dropped: a vacancy is not an atom, so it carries no mass, charge or Magpie property.
   The bracket/number grammar is then pymatgen's (``pymatgen.core.Composition``); before that, every
   token is checked here, so unknown symbols (pymatgen silently makes "Xx", "Xy" dummy species and
   "D", "T" hydrogen isotopes) and zero amounts (pymatgen silently drops "Na0") are refused.

Canonical form: amounts are rounded to ``AMOUNT_DECIMALS`` decimals (``AMOUNT_TOLERANCE``) after summing
so canonicalisation is stable; ``formula`` is pymatgen's reduced formula of the sum; ``elements`` are
sorted by atomic number; equality and hashing use (elements, atomic fractions rounded to
``AMOUNT_DECIMALS``, structure_type), so FeO, Fe0.5O0.5 and Fe2O2 are equal. Use ``Composition.key``
(or the object itself) to deduplicate, not ``formula``: the formula keeps the user's scale for
non-integer compositions (pymatgen reduces Fe2O2 to FeO but leaves Fe0.5O0.5 as written).
"""

from __future__ import annotations

import ast
import gc
import math
import numbers
import operator
import re
import unicodedata
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, cast

from pymatgen.core import Composition as PmgComposition
from pymatgen.core import Element as PmgElement
from pymatgen.util.string import formula_double_format

from featurize.elements import ELEMENTS, atomic_number, is_element

__all__ = [
    "AMOUNT_DECIMALS",
    "AMOUNT_TOLERANCE",
    "MAX_FORMULA_LENGTH",
    "Composition",
    "CompositionError",
    "parse_formula",
    "parse_formulas",
]

#: Longest formula text accepted (characters, before normalisation).
MAX_FORMULA_LENGTH = 200
#: Amounts and atomic fractions are rounded to this many decimals, i.e. to ``AMOUNT_TOLERANCE``.
AMOUNT_DECIMALS = 8
AMOUNT_TOLERANCE = 10.0**-AMOUNT_DECIMALS
#: Smallest amount accepted: below the tolerance an amount would be rounded up to it (or to zero).
_MIN_AMOUNT = AMOUNT_TOLERANCE * (1 - 1e-9)
#: Size of the per-process cache of parsed strings (batches repeat formulas a lot).
PARSE_CACHE_SIZE = 2**17

_SHOW_MAX = 80
#: Largest amount of one element after summing a mixture (a formula unit, not a mole count).
MAX_AMOUNT = 1e6


def _escape(text: str) -> str:
    """``text`` with every control, format, private-use or unassigned character and lone surrogate (Unicode
    category C: NUL, CR, "\\ud800") written as a Python escape, so an error message is always printable
    and UTF-8 safe."""
    if text.isprintable():
        return text
    return "".join(ascii(ch)[1:-1] if unicodedata.category(ch)[0] == "C" else ch for ch in text)


def _show(text: object) -> str:
    """How an input is named in an error message: the string in double quotes (non-printable characters
    escaped, long text cut), else its repr."""
    if isinstance(text, str):
        shown = text if len(text) <= _SHOW_MAX else text[: _SHOW_MAX - 3] + "..."
        return '"' + _escape(shown) + '"'
    return _escape(repr(text))


class CompositionError(ValueError):
    """A formula that cannot be parsed; the message names the input: '"Na2XyO3": unknown element Xy'."""

    def __init__(self, text: object, problem: str = "invalid formula") -> None:
        self.text = text
        self.problem = problem
        super().__init__(f"{_show(text)}: {_escape(problem)}")

    def __reduce__(self) -> tuple[Any, ...]:  # keep (text, problem) across pickling (process pools, Ray)
        return (type(self), (self.text, self.problem))


class _Problem(Exception):
    """Internal: what is wrong, before the input is attached (becomes a CompositionError)."""


class Composition:
    """Canonical, immutable, hashable composition. Build it with ``parse_formula`` or ``from_amounts``.

    A value object with ``__slots__`` (no per-instance dict: a batch of a million compositions is a
    million fewer objects for the garbage collector to track). ``fractions``, ``key``, ``label`` and, for
    a composition from the fast parse path, ``formula`` are derived on first use: featurising never
    needs them."""

    __slots__ = ("_formula", "_fractions", "_key", "_label", "amounts", "elements", "structure_type")

    elements: tuple[str, ...]
    amounts: tuple[float, ...]
    structure_type: str | None
    _formula: str | None
    _fractions: tuple[float, ...]
    _key: tuple[Any, ...]
    _label: str

    def __init__(
        self,
        formula: str,
        elements: tuple[str, ...],
        amounts: tuple[float, ...],
        structure_type: str | None = None,
    ) -> None:
        if len(elements) != len(amounts) or not elements:
            raise ValueError("elements and amounts must be non-empty and aligned")
        zs = [atomic_number(e) for e in elements]
        if zs != sorted(set(zs)):
            raise ValueError(f"elements must be unique and sorted by atomic number: {elements}")
        if not all(math.isfinite(a) and a > 0 for a in amounts):
            raise ValueError(f"amounts must be finite and positive: {amounts}")
        _set_formula(self, formula)
        _set_elements(self, elements)
        _set_amounts(self, amounts)
        _set_structure_type(self, structure_type)

    @classmethod
    def _trusted(
        cls,
        formula: str | None,
        elements: tuple[str, ...],
        amounts: tuple[float, ...],
        structure_type: str | None,
    ) -> Composition:
        """Internal: the same object as the constructor, for values ``_canonical`` has already checked
        (elements unique and sorted by Z, amounts finite and positive), without checking them again.
        ``formula=None``: non-integer amounts already rounded, whose formula is derived on first use."""
        obj = _new(cls)
        _set_formula(obj, formula)
        _set_elements(obj, elements)
        _set_amounts(obj, amounts)
        _set_structure_type(obj, structure_type)
        return obj

    @classmethod
    def from_amounts(cls, amounts: Mapping[str, float], structure_type: str | None = None) -> Composition:
        """Canonical composition from {element: amount} (amounts > 0; rounded as by the parser)."""
        try:
            return _canonical(dict(amounts), structure_type)
        except _Problem as exc:
            raise CompositionError(dict(amounts), str(exc)) from None

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Composition is immutable (cannot set {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Composition is immutable (cannot delete {name!r})")

    def __reduce__(self) -> tuple[Any, ...]:  # pickling (process pools, Ray): the four values, checked
        return (type(self), (self.formula, self.elements, self.amounts, self.structure_type))

    def __setstate__(self, state: object) -> None:
        """Unpickle a Composition pickled when it was a dataclass (state: a dict of its fields and
        derived values); current pickles go through ``__reduce__`` and never get here."""
        fields = state[1] if isinstance(state, tuple) else state
        if not isinstance(fields, dict):
            raise TypeError(f"cannot restore a Composition from {type(state).__name__}")
        _set_formula(self, fields["formula"])
        _set_elements(self, tuple(fields["elements"]))
        _set_amounts(self, tuple(fields["amounts"]))
        _set_structure_type(self, fields.get("structure_type"))

    def __copy__(self) -> Composition:
        return self

    def __deepcopy__(self, memo: object) -> Composition:
        return self

    def __repr__(self) -> str:
        return (
            f"Composition(formula={self.formula!r}, elements={self.elements!r}, amounts={self.amounts!r}, "
            f"structure_type={self.structure_type!r})"
        )

    @property
    def formula(self) -> str:
        """pymatgen's reduced formula of the amounts ("Na0.67Mn0.6Ni0.3Fe0.1O2", "LiFePO4")."""
        formula = self._formula
        if formula is None:  # fast path: amounts rounded and not all integers, so factor 1
            formula = _fractional_formula(self.elements, self.amounts)
            _set_formula(self, formula)
        return formula

    @property
    def fractions(self) -> tuple[float, ...]:
        """Atomic fractions aligned with ``elements``; they sum to 1."""
        try:
            return self._fractions
        except AttributeError:
            total = math.fsum(self.amounts)
            fractions = tuple([a / total for a in self.amounts])
            _set_fractions(self, fractions)
            return fractions

    @property
    def key(self) -> tuple[Any, ...]:
        """(elements, rounded fractions, structure_type): what equality and hashing use."""
        try:
            return self._key
        except AttributeError:
            rounded = tuple([round(f, AMOUNT_DECIMALS) for f in self.fractions])
            key = (self.elements, rounded, self.structure_type)
            _set_key(self, key)
            return key

    @property
    def label(self) -> str:
        """Formula with the polymorph prefix, e.g. "P2-Na0.67MnO2"; ``parse_formula(c.label) == c`` for every
        composition. pymatgen's formula text rounds amounts (1e-8 is written "0", 1.00000001 "1"); when it
        would not parse back to this composition the label writes the exact amounts instead
        ("Fe1C1e-08")."""
        try:
            return self._label
        except AttributeError:
            label = _round_trip_label(self)
            _set_label(self, label)
            return label

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Composition):
            return NotImplemented
        return self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __str__(self) -> str:
        return self.label

    def as_dict(self) -> dict[str, float]:
        """{element: reduced amount}, ordered by atomic number."""
        return dict(zip(self.elements, self.amounts, strict=True))

    def to_pymatgen(self) -> PmgComposition:
        """pymatgen Composition of the reduced amounts (the structure type is not carried)."""
        return PmgComposition(self.as_dict())

    def element_fraction(self, el: str) -> float:
        """Atomic fraction of ``el`` (0.0 for an element that is absent; ValueError for a non-element)."""
        atomic_number(el)
        try:
            return self.fractions[self.elements.index(el)]
        except ValueError:
            return 0.0

    def amount(self, el: str) -> float:
        """Reduced amount of ``el`` (0.0 if absent)."""
        atomic_number(el)
        try:
            return self.amounts[self.elements.index(el)]
        except ValueError:
            return 0.0


_new = object.__new__
# the slots' own setters (the class refuses attribute assignment: it is immutable)
_set_formula = vars(Composition)["_formula"].__set__
_set_elements = vars(Composition)["elements"].__set__
_set_amounts = vars(Composition)["amounts"].__set__
_set_structure_type = vars(Composition)["structure_type"].__set__
_set_fractions = vars(Composition)["_fractions"].__set__
_set_key = vars(Composition)["_key"].__set__
_set_label = vars(Composition)["_label"].__set__


# ----------------------------------------------------------------------------------------- parsing

_TRANSLATE = str.maketrans(
    {
        "–": "-",
        "—": "-",
        "−": "-",
        "‐": "-",
        "‑": "-",
        "‒": "-",
        "′": "'",
        "’": "'",
        "‘": "'",
        "ʹ": "'",
        "`": "'",
        "″": "''",
        "•": "·",
        "∙": "·",
        "⋅": "·",
        "・": "·",
    }
)
_GREEK = {"α": "alpha", "β": "beta", "γ": "gamma", "δ": "delta", "ε": "epsilon"}
_STACK = r"(?:(?:OP|[OP])'?[1-9]|T'?[1-9]?)"
_PHASE = r"(?:[αβγδε]|(?i:alpha|beta|gamma|delta|epsilon))'{0,2}"
#: One-letter phase labels of cathode databases: L(ayered), and the crystal systems m(onoclinic),
#: o(rthorhombic), t(etragonal), c(ubic), h(exagonal), r(hombohedral); a(morphous).
_LETTER = r"(?:L|[motchra])"
_PREFIX_RE = re.compile(
    rf"^(?P<st>{_STACK}(?:/{_STACK})*|{_PHASE}|{_LETTER})\s*-\s*(?:(?i:type)\b[\s-]*)?(?P<rest>\S.*)$",
    re.DOTALL,
)
#: A decimal amount, optionally in scientific notation with a lower-case "e" ("1e-3", "2.5e2"; an
#: upper-case E would be read as the start of Er/Es/Eu).
_NUMBER = r"(?:(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?)"
_COEF_RE = re.compile(
    rf"^(?:(?P<num>{_NUMBER}(?:/{_NUMBER})?)(?P<numvar>[a-z][a-z0-9_]*)?"
    r"|(?P<var>[a-z][a-z0-9_]*)|\((?P<expr>[^()A-Z]*[a-z0-9][^()A-Z]*)\))"
)
_FRACTION_RE = re.compile(rf"({_NUMBER})/({_NUMBER})")
_VACANCY_RE = re.compile(rf"(?:□|Vac){_NUMBER}?")
_TOKEN_RE = re.compile(rf"(?P<el>[A-Z][a-z]*)|(?P<num>{_NUMBER})|(?P<open>[(\[{{])|(?P<close>[)\]}}])")
_VARIABLE_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_SEPARATORS = frozenset("-+·@")
#: The sign of an exponent ("1e-3"), which is not a mixture separator.
_EXPONENT_SIGN_RE = re.compile(r"(?<=[\d.]e)[-+](?=\d)")
#: "CuSO4.5H2O": an ASCII-dot hydrate that pymatgen (and a decimal reading) turns into O4.5 H2O.
#: (integer part >= 1, a water count of 1-2 digits: "Na0.5H2O" and "S2.0H2O" stay decimals).
_DOT_HYDRATE_RE = re.compile(r"(?<![\d.])[1-9]\d*\.[1-9]\d?[HD]2O(?![a-z\d])")
#: A mixture component that is one element symbol with an optional amount ("6Al", "Mg4").
_SINGLE_ELEMENT_RE = re.compile(rf"[A-Z][a-z]?{_NUMBER}?")
_CLOSING = {")": "(", "]": "[", "}": "{"}
#: A flat formula (element symbols with optional plain amounts, nothing else): the common case.
_FLAT_RE = re.compile(rf"(?:[A-Z][a-z]*{_NUMBER}?)+")
_FLAT_TOKEN_RE = re.compile(rf"([A-Z][a-z]*)({_NUMBER})?")
_NUMBER_FULLMATCH = re.compile(_NUMBER).fullmatch
_SYMBOL_SPLIT = re.compile(r"([A-Z][a-z]*)").split
#: A polymorph prefix as a whole token (what ``_PREFIX_RE`` reads before the "-"), for the fast path.
_PREFIX_TOKEN_RE = re.compile(rf"{_STACK}(?:/{_STACK})*|{_PHASE}|{_LETTER}")
#: prefix text -> structure type (cached for the fast path; None: the text is no prefix).
_PREFIX_TYPES: dict[str, str | None] = {}
_Z_OF = {sym: atomic_number(sym) for sym in ELEMENTS}
#: pymatgen's amount tolerance: amounts this close to an integer count as integers in its reduction.
_PMG_TOLERANCE: float = PmgComposition.amount_tolerance


def _structure_type(token: str) -> str:
    head = token.rstrip("'")
    primes = token[len(head) :]
    if head in _GREEK:
        return _GREEK[head] + primes
    if head.lower() in _GREEK.values():
        return head.lower() + primes
    return token


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    stack: list[str] = []
    start = 0
    exponent_signs = {m.start() for m in _EXPONENT_SIGN_RE.finditer(text)} if "e" in text else set()
    for i, ch in enumerate(text):
        if ch in "([{":
            stack.append(ch)
        elif ch in _CLOSING:
            if not stack or stack.pop() != _CLOSING[ch]:
                raise _Problem(f"unbalanced brackets (unexpected '{ch}')")
        elif ch in _SEPARATORS and not stack and i not in exponent_signs:
            parts.append(text[start:i])
            start = i + 1
    if stack:
        raise _Problem(f"unbalanced brackets ('{stack[-1]}' is never closed)")
    parts.append(text[start:])
    return parts


def _eval_expression(expr: str, variables: Mapping[str, float]) -> float:
    """Safely evaluate a coefficient like ``1-x`` or ``0.5*x`` (numbers, variables, + - * /)."""
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError:
        raise _Problem(f"cannot read coefficient ({expr})") from None

    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.Name):
            return _variable(node.id, variables)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            v = ev(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub | ast.Mult | ast.Div):
            a, b = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Add):
                return a + b
            if isinstance(node.op, ast.Sub):
                return a - b
            if isinstance(node.op, ast.Mult):
                return a * b
            if b == 0:
                raise _Problem(f"division by zero in coefficient ({expr})")
            return a / b
        raise _Problem(f"cannot read coefficient ({expr})")

    return ev(tree)


def _variable(name: str, variables: Mapping[str, float]) -> float:
    if name not in variables:
        raise _Problem(f"variable {name!r} has no value (pass variables={{{name!r}: ...}})")
    return variables[name]


def _number(text: str) -> float:
    if "/" in text:
        num, den = text.split("/")
        if float(den) == 0:
            raise _Problem(f"division by zero in amount {text}")
        return float(num) / float(den)
    return float(text)


def _coefficient(part: str, variables: Mapping[str, float]) -> tuple[float, str]:
    """Split a mixture component into (coefficient, formula text)."""
    m = _COEF_RE.match(part)
    if m is None:
        return 1.0, part
    rest = part[m.end() :]
    if not rest:
        if m.group("var") is not None:
            raise _Problem(f"no formula in {part!r} (element symbols start with a capital letter)")
        raise _Problem(
            f"component {part!r} has no formula (a number after '-' is not a negative amount: "
            "amounts must be positive)"
        )
    if m.group("num") is not None:
        value = _number(m.group("num"))
        if value == 0:
            raise _Problem(f"zero coefficient in {part!r}")
        if m.group("numvar"):
            value *= _variable(m.group("numvar"), variables)
    elif m.group("var") is not None:
        value = _variable(m.group("var"), variables)
    else:
        value = _eval_expression(m.group("expr"), variables)
    if not math.isfinite(value) or value < 0:
        raise _Problem(f"coefficient of {rest!r} must be >= 0 (got {value:g})")
    return value, rest


_BRACKETS = str.maketrans("[]{}", "()()")


def _pymatgen_amounts(text: str) -> dict[str, float]:
    """``{symbol: amount}`` of ``PmgComposition(text).get_el_amt_dict()`` for a bracketed formula whose
    tokens are all checked element symbols and positive amounts: pymatgen's own formula parser, then
    what the Composition constructor does with its result (amounts below its tolerance dropped, negative
    ones refused; each symbol an Element, so one entry per symbol), without building Element objects."""
    amounts: dict[str, float] = {}
    for symbol, amount in PmgComposition._parse_formula(text).items():
        if amount < -_PMG_TOLERANCE:
            raise ValueError("Amounts in Composition cannot be negative!")
        if abs(amount) >= _PMG_TOLERANCE:
            amounts[symbol] = float(amount)
    return amounts


def _component_amounts(part: str) -> dict[str, float]:
    """Amounts of one mixture component (no coefficient): own token checks, then pymatgen's grammar
    for bracketed formulas (a flat formula is summed directly from the checked tokens)."""
    text = _FRACTION_RE.sub(lambda m: repr(_number(m.group(0))), part)
    text = _VACANCY_RE.sub("", text)
    if not text:
        raise _Problem(f"no elements in {part!r}")
    pos = 0
    prev = ""  # kind of the previous token: "", "el", "num", "open", "close"
    symbols: set[str] = set()
    flat: dict[str, float] = {}  # amounts when there are no brackets (pymatgen not needed then)
    nested = False
    last_el = ""
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            ch = text[pos]
            if ch.islower():
                raise _Problem(f"unexpected '{ch}' in {part!r} (element symbols start with a capital letter)")
            raise _Problem(f"unexpected character {ch!a} in {part!r}")
        kind = m.lastgroup or ""
        tok = m.group(0)
        if last_el and kind != "num":  # the previous element had no amount: 1
            flat[last_el] = flat.get(last_el, 0.0) + 1.0
            last_el = ""
        if kind == "el":
            if not is_element(tok):
                raise _Problem(f"unknown element {tok}")
            symbols.add(tok)
            last_el = tok
        elif kind == "num":
            if prev not in ("el", "close"):
                raise _Problem(f"amount {tok} in {part!r} does not follow an element or a bracket")
            if float(tok) == 0:
                raise _Problem(f"zero amount in {part!r}")
            if not float(tok) <= MAX_AMOUNT:
                raise _Problem(f"amount {tok[:20]} is too large (at most {MAX_AMOUNT:g})")
            if prev == "el":
                flat[last_el] = flat.get(last_el, 0.0) + float(tok)
                last_el = ""
        elif kind == "close" and prev == "open":
            raise _Problem(f"empty brackets in {part!r}")
        if kind in ("open", "close"):
            nested = True
        prev = kind
        pos = m.end()
    if last_el:
        flat[last_el] = flat.get(last_el, 0.0) + 1.0
    if not symbols:
        raise _Problem(f"no elements in {part!r}")
    if not nested:
        return flat
    try:
        amounts = _pymatgen_amounts(text.translate(_BRACKETS))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise _Problem(f"cannot parse {part!r} ({exc})") from None
    if set(amounts) != symbols or not all(math.isfinite(a) and a > 0 for a in amounts.values()):
        raise _Problem(f"cannot parse {part!r}")
    return amounts


#: round(amount, AMOUNT_DECIMALS) of amounts already checked to be in range (batches repeat amounts).
_ROUNDED: dict[float, float] = {}
_ROUNDED_MAX = 2**16


def _round_amount(amount: float) -> float:
    r = round(amount, AMOUNT_DECIMALS)
    if len(_ROUNDED) < _ROUNDED_MAX:
        _ROUNDED[amount] = r
    return r


def _canonical(
    total: dict[str, float],
    structure_type: str | None,
    *,
    reference: bool = False,
    checked: bool = False,
) -> Composition:
    """Round, reduce (pymatgen's reduced formula and factor) and build the Composition. ``checked``:
    the caller guarantees real elements with finite positive float amounts (the flat parse path)."""
    if not checked:
        for el, amt in total.items():
            if not is_element(el):
                raise _Problem(f"unknown element {el}")
            if not isinstance(amt, int | float) or not math.isfinite(amt) or amt <= 0:
                raise _Problem(f"amount of {el} must be positive and finite (got {amt!r})")
    rounded: dict[str, float] = {}
    cached = _ROUNDED.get
    for el, amt in total.items():
        r = cached(amt)
        if r is None:
            if not amt <= MAX_AMOUNT:
                raise _Problem(
                    f"amount of {el} is too large ({amt:g}; at most {MAX_AMOUNT:g} per formula unit)"
                )
            if amt < _MIN_AMOUNT:
                raise _Problem(f"amount of {el} ({amt:g}) is below the tolerance {AMOUNT_TOLERANCE:g}")
            r = _round_amount(amt)
        rounded[el] = r
    if not rounded:
        raise _Problem("empty composition")
    formula, factor = (_reduce_reference if reference else _reduce)(rounded)
    # == pymatgen's get_reduced_composition_and_factor() (composition / factor), without a second object
    order = sorted(rounded, key=_Z_OF.__getitem__)
    if factor == 1:  # round(x, 8) is idempotent: the amounts are already reduced and rounded
        reduced = tuple([float(rounded[e]) for e in order])
    else:
        reduced = tuple([round(rounded[e] / factor, AMOUNT_DECIMALS) for e in order])
    return Composition._trusted(formula, tuple(order), reduced, structure_type)


def _reduce_reference(amounts: dict[str, float]) -> tuple[str, float]:
    """pymatgen's reduced formula and factor of ``amounts`` (the reference ``_reduce`` must equal)."""
    with warnings.catch_warnings():  # noble gases have no Pauling X; pymatgen warns while ordering
        warnings.filterwarnings("ignore", message="No Pauling electronegativity", category=UserWarning)
        return PmgComposition(amounts).get_reduced_formula_and_factor()


@lru_cache(maxsize=1)
def _pauling() -> tuple[dict[str, float], dict[str, tuple[float, str]]]:
    """pymatgen's Pauling electronegativity per element (NaN for He, Ne, Ar) and its formula sort key."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No Pauling electronegativity", category=UserWarning)
        x = {sym: float(PmgElement(sym).X) for sym in ELEMENTS}
    order = {sym: (math.inf if math.isnan(v) else v, sym) for sym, v in x.items()}
    return x, order


@lru_cache(maxsize=2**16)
def _amount_text(amount: float) -> str:
    """How ``Composition.formula`` writes an amount (pymatgen's ``formula_double_format``, ones kept);
    cached: screening batches reuse a few hundred amounts across millions of formulas."""
    return str(formula_double_format(amount, ignore_ones=False))


def _reduce(amounts: dict[str, float]) -> tuple[str, float]:
    """Exactly ``pymatgen.core.Composition(amounts).get_reduced_formula_and_factor()`` for amounts of
    real elements that are all >= pymatgen's amount tolerance (what ``_canonical`` passes), without
    building pymatgen objects (~20x faster). Same steps as pymatgen 2026.10: non-integer amounts give
    ``Composition.formula`` without spaces and factor 1; integer amounts go through ``reduce_formula``
    (gcd, a polyanion suffix when the two most electronegative of >= 3 elements differ by < 1.65, and
    the special formulas such as O2, H2O2). ``tests/featurize/test_composition_fast.py`` checks it
    against pymatgen on thousands of compositions."""
    x, order = _pauling()
    tol = _PMG_TOLERANCE
    syms = sorted(amounts, key=order.__getitem__)
    for v in amounts.values():
        if abs(v - round(v)) >= tol:
            return "".join([s + _amount_text(amounts[s]) for s in syms]), 1
    ints = {s: round(v) for s, v in amounts.items()}
    factor = abs(math.gcd(*ints.values()))
    suffix = ""
    if len(syms) >= 3 and x[syms[-1]] - x[syms[-2]] < 1.65:
        pair = {s: ints[s] / factor for s in syms[-2:]}
        pair_factor = abs(math.gcd(*(int(v) for v in pair.values())))
        if pair_factor != 1:
            inner = "".join(f"{s}{formula_double_format(pair[s] * 1.0 / pair_factor)}" for s in syms[-2:])
            suffix = f"({inner}){pair_factor}"
            syms = syms[:-2]
    formula = "".join(f"{s}{formula_double_format(ints[s] * 1.0 / factor)}" for s in syms) + suffix
    special = PmgComposition.special_formulas
    if formula in special:
        return special[formula], factor / 2
    return formula, factor


@lru_cache(maxsize=PARSE_CACHE_SIZE)
def _parse_cached(text: str, variables: tuple[tuple[str, float], ...]) -> Composition | str:
    """Parse, returning the Composition or the problem text (exceptions are not cached by lru_cache)."""
    try:
        return _parse(text, dict(variables))
    except _Problem as exc:
        return str(exc)


@lru_cache(maxsize=PARSE_CACHE_SIZE)
def _parse_plain(text: str) -> Composition | str:
    """``_parse_cached(text, ())`` for a formula without variables, cached on the string alone (no key tuple
    to build, hash and keep per entry)."""
    try:
        return _parse(text, {})
    except _Problem as exc:
        return str(exc)


def _flat_amounts(text: str) -> dict[str, float] | None:
    """Amounts of a flat ASCII formula ("Na0.6Li0.2Mn0.7Ru0.1O2"), summed with the same float operations
    as the general path (and pymatgen: each token's amount added once); None when the text needs the
    general path (not flat, or any token it would refuse or rewrite: non-elements such as "Xx" or "Vac",
    zero amounts, an ASCII-dot hydrate)."""
    tokens = _FLAT_TOKEN_RE.findall(text)
    # the tokens cover the whole text iff their lengths add up (each match is non-empty and they do not
    # overlap): one regex pass instead of a fullmatch and a findall
    if not tokens or sum([len(a) + len(b) for a, b in tokens]) != len(text) or not text.isascii():
        return None
    if "2O" in text and _DOT_HYDRATE_RE.search(text):
        return None
    flat: dict[str, float] = {}
    get = flat.get
    z_of = _Z_OF
    for sym, num in tokens:
        if sym not in z_of:
            return None
        if num:
            value = float(num)
            if value == 0:
                return None
            flat[sym] = get(sym, 0.0) + value
        else:
            flat[sym] = get(sym, 0.0) + 1.0
    return flat


#: amount text of a flat formula ("0.670", "" for none) -> (amount rounded to AMOUNT_DECIMALS, whether
#: pymatgen counts it as an integer); None: an amount the fast path leaves to the general one (zero,
#: below the tolerance, too large) for its error message.
_AMOUNTS: dict[str, tuple[float, bool] | None] = {}
_AMOUNTS_MAX = 2**17


def _amount_entry(num: str) -> tuple[float, bool] | None:
    entry: tuple[float, bool] | None = None
    if not num or (num.isascii() and _NUMBER_FULLMATCH(num) is not None):
        value = float(num) if num else 1.0
        if _MIN_AMOUNT <= value <= MAX_AMOUNT:
            r = round(value, AMOUNT_DECIMALS)
            entry = (r, abs(r - round(r)) < _PMG_TOLERANCE)
    if len(_AMOUNTS) < _AMOUNTS_MAX:
        _AMOUNTS[num] = entry
    return entry


#: One token of a flat formula: an element-like symbol (one capital, at most one lower-case letter) and
#: its optional amount ("Mn0.6", "O2", "Na"). ASCII digits only: a Unicode digit takes the general path.
_ELEMENT_TOKENS = re.compile(rf"[A-Z][a-z]?(?:{_NUMBER})?", re.ASCII).findall
#: token text -> (atomic number, symbol, amount rounded to AMOUNT_DECIMALS, whether pymatgen counts it as
#: an integer); None: not a real element with an amount the fast path accepts. Cached: a file repeats
#: element-amount tokens over millions of formulas.
_Token = tuple[int, str, float, bool]
_TOKENS: dict[str, _Token | None] = {}
_TOKENS_MAX = 2**18
_BY_Z = operator.itemgetter(0)
_SYMBOL = operator.itemgetter(1)
_ROUNDED_AMOUNT = operator.itemgetter(2)
_IS_INTEGER = operator.itemgetter(3)


def _token_entry(token: str) -> _Token | None:
    sym = token[:2] if token[1:2].islower() else token[:1]
    entry: _Token | None = None
    z = _Z_OF.get(sym)
    if z is not None:
        num = token[len(sym) :]
        amount = _AMOUNTS.get(num) or _amount_entry(num)
        if amount is not None:
            entry = (z, sym, amount[0], amount[1])
    if len(_TOKENS) < _TOKENS_MAX:
        _TOKENS[token] = entry
    return entry


@lru_cache(maxsize=1)
def _formula_rank() -> dict[str, int]:
    """Element -> its place in pymatgen's formula order (Pauling electronegativity, NaN last, ties by
    symbol)."""
    _x, order = _pauling()
    return {sym: rank for rank, sym in enumerate(sorted(ELEMENTS, key=order.__getitem__))}


#: rounded amount -> its text in ``Composition.formula`` (a plain dict: ``_amount_text``'s lru_cache
#: builds a key object for every float it is called with).
_AMOUNT_TEXTS: dict[float, str] = {}


def _text_of(amount: float) -> str:
    text = _amount_text(amount)
    if len(_AMOUNT_TEXTS) < _AMOUNTS_MAX:
        _AMOUNT_TEXTS[amount] = text
    return text


def _fractional_formula(elements: tuple[str, ...], amounts: tuple[float, ...]) -> str:
    """``_reduce(dict(zip(elements, amounts)))[0]`` for rounded amounts that are not all integers
    (pymatgen's ``Composition.formula`` without spaces): the elements in formula order, each with its
    amount text."""
    rank = _formula_rank()
    get = _AMOUNT_TEXTS.get
    ordered = sorted(zip(map(rank.__getitem__, elements), elements, amounts, strict=True))
    return "".join([sym + (get(a) or _text_of(a)) for _rank, sym, a in ordered])


def _flat_fractional(text: str, structure_type: str | None = None) -> Composition | None:
    """The commonest case on its own path: a flat formula, each element once, some amount non-integer
    ("Na0.67Mn0.6Ni0.3Fe0.1O2"). Same result as ``_canonical(_flat_amounts(text))`` (pymatgen's formula
    for non-integer amounts, factor 1): one regex pass into element-amount tokens, each looked up in a
    cache that also validates it (a real element, a plain amount in range), one sort by atomic number;
    the formula text is left to ``Composition.formula`` (derived on first use). None for anything else
    (the general path decides: integer amounts, repeated elements, brackets, unknown symbols ...)."""
    tokens = _ELEMENT_TOKENS(text)
    # the tokens cover the whole text iff their lengths add up (matches are non-empty, non-overlapping)
    if not tokens or sum(map(len, tokens)) != len(text):
        return None
    found = list(map(_TOKENS.get, tokens))  # C-level loops (map, itemgetter) rather than comprehensions
    if None in found:
        found = [e or _token_entry(t) for e, t in zip(found, tokens, strict=True)]
        if None in found:
            return None
    entries = cast("list[_Token]", found)
    if all(map(_IS_INTEGER, entries)):  # integer amounts: gcd, polyanions, special formulas
        return None
    entries.sort(key=_BY_Z)
    elements = tuple(map(_SYMBOL, entries))
    if len(set(elements)) != len(elements):  # a repeated element: summed by the general path
        return None
    if "2O" in text and _DOT_HYDRATE_RE.search(text):
        return None
    return Composition._trusted(None, elements, tuple(map(_ROUNDED_AMOUNT, entries)), structure_type)


def _flat_with_prefix(text: str) -> Composition | None:
    """A polymorph prefix and a flat formula ("P2-Na0.67Mn0.6Ni0.3Fe0.1O2"): the same result as the
    general path (which reads the prefix, finds one mixture component with coefficient 1 and sums its
    flat tokens), without text normalisation, bracket scanning or coefficient matching; None for
    anything else. ASCII, no whitespace and a prefix that is a whole stacking/phase token make every
    step of the general path before the amounts a no-op."""
    head, _sep, rest = text.partition("-")
    if head in _PREFIX_TYPES:
        structure_type = _PREFIX_TYPES[head]
    else:
        token = head.isascii() and _PREFIX_TOKEN_RE.fullmatch(head) is not None
        structure_type = _structure_type(head) if token else None
        if len(_PREFIX_TYPES) < 1024:
            _PREFIX_TYPES[head] = structure_type
    if structure_type is None:
        return None
    fast = _flat_fractional(rest, structure_type)
    if fast is not None:
        return fast
    flat = _flat_amounts(rest)
    return None if flat is None else _canonical(flat, structure_type, checked=True)


def _check_characters(text: str) -> None:
    """Refuse control, format and unassigned characters and lone surrogates (a NUL from a file must not
    end the formula early; a stray control character must not vanish as whitespace)."""
    if text.isprintable():
        return
    for ch in text.strip(" \t\r\n"):
        if (
            unicodedata.category(ch)[0] == "C"
        ):  # Cc control, Cf format, Cs surrogate, Co private, Cn unassigned
            raise _Problem(f"unexpected character {ch!a} (a control or non-printable character)")


def _split_component(part: str, variables: Mapping[str, float]) -> tuple[float, str]:
    if not part:
        raise _Problem("empty mixture component (doubled or dangling '-'; amounts must be positive)")
    return _coefficient(part, variables)


def _check_not_alloy(parts: list[str], split: list[tuple[float, str]]) -> None:
    """Refuse "Ti-6Al-4V" (alloy notation: weight percent) and "Li-2Mg4": a mixture in which a bare
    element is combined with coefficients is not a sum of compounds that pymatgen or a chemist would read."""
    coefficients = any(part != body for part, (_coef, body) in zip(parts, split, strict=True))
    single = [body for _coef, body in split if _SINGLE_ELEMENT_RE.fullmatch(body)]
    if coefficients and single:
        raise _Problem(
            f"ambiguous mixture: a single element ({single[0]}) with coefficients reads as alloy notation "
            "(Ti-6Al-4V means weight percent) or a negative amount; write one formula (TiAl6V4) or a sum of "
            "compounds"
        )


def _parse(text: str, variables: Mapping[str, float], *, reference: bool = False) -> Composition:
    """Parse ``text``; ``reference=True`` reduces through pymatgen objects (the slow reference path)."""
    if not reference:
        fast = _flat_with_prefix(text) if "-" in text else _flat_fractional(text)
        if fast is not None:
            return fast
    flat = _flat_amounts(text)
    if flat is not None:  # fast path: same result as below (no prefix, mixture or coefficient)
        return _canonical(flat, None, reference=reference, checked=True)
    _check_characters(text)
    s = unicodedata.normalize("NFKC", text).translate(_TRANSLATE).strip()
    if not s:
        raise _Problem("empty formula")
    if _DOT_HYDRATE_RE.search(s):
        raise _Problem(
            "ambiguous '.' before water: a decimal amount or a hydrate? Write the hydrate with a middle dot "
            "or '+' (CuSO4·5H2O, CuSO4+5H2O)"
        )
    structure_type: str | None = None
    m = _PREFIX_RE.match(s)
    if m is not None:
        structure_type = _structure_type(m.group("st"))
        s = m.group("rest")
    s = "".join(s.split())
    total: dict[str, float] = {}
    parts = _split_top_level(s)
    split = [_split_component(part, variables) for part in parts]
    if len(split) > 1:
        _check_not_alloy(parts, split)
    for coef, body in split:
        amounts = _component_amounts(body)
        if coef == 0:
            continue
        for el, amt in amounts.items():
            total[el] = total.get(el, 0.0) + coef * amt
    if not total:
        raise _Problem("empty composition (every component has coefficient 0)")
    return _canonical(total, structure_type, reference=reference)


def _exact_amount(amount: float) -> str:
    text = repr(float(amount))
    return text[:-2] if text.endswith(".0") else text


def _round_trip_label(comp: Composition) -> str:
    prefix = f"{comp.structure_type}-" if comp.structure_type else ""
    back = _parse_plain(comp.formula)
    if isinstance(back, Composition) and back.key[:2] == comp.key[:2]:
        return prefix + comp.formula
    return prefix + "".join(
        [el + _exact_amount(a) for el, a in zip(comp.elements, comp.amounts, strict=True)]
    )


def _variables_key(variables: Mapping[str, float] | None) -> tuple[tuple[str, float], ...]:
    if not variables:
        return ()
    items: list[tuple[str, float]] = []
    for name, value in variables.items():
        if not isinstance(name, str) or not _VARIABLE_RE.match(name):
            raise _Problem(f"variable name {name!r} must be lower-case letters, digits, _ (letter first)")
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise _Problem(f"variable {name!r} must be a finite number (got {value!r})")
        items.append((name, float(value)))
    return tuple(sorted(items))


def parse_formula(text: object, variables: Mapping[str, float] | None = None) -> Composition:
    """Parse one formula (see the module docstring for the grammar); raise ``CompositionError``."""
    if not isinstance(text, str):
        raise CompositionError(text, f"not a formula string (got {type(text).__name__})")
    if len(text) > MAX_FORMULA_LENGTH:
        raise CompositionError(text, f"too long ({len(text)} characters, at most {MAX_FORMULA_LENGTH})")
    key: tuple[tuple[str, float], ...] = ()
    if variables:
        try:
            key = _variables_key(variables)
        except _Problem as exc:
            raise CompositionError(text, str(exc)) from None
    result = _parse_cached(text, key) if key else _parse_plain(text)
    if isinstance(result, str):
        raise CompositionError(text, result)
    return result


def parse_formulas(
    texts: Iterable[object], variables: Mapping[str, float] | None = None
) -> list[Composition | CompositionError]:
    """Parse a batch; each row gives its Composition or its CompositionError (never raises per row).

    The cyclic garbage collector is paused while the batch is parsed: parsing creates no reference
    cycles, but each parsed composition is a new tracked object, and the full collections their number
    triggers traverse every object of the process (pymatgen's and numpy's included); on 100,000
    distinct formulas that was ~20% of the time. It is re-enabled at the end (if it was enabled)."""
    out: list[Composition | CompositionError] = []
    with _collector_paused():
        for text in texts:
            try:
                out.append(parse_formula(text, variables))
            except CompositionError as exc:
                out.append(exc)
    return out


@contextmanager
def _collector_paused() -> Iterator[None]:
    """``gc`` disabled inside the block, re-enabled after it if it was enabled before. Another thread
    that allocates cycles meanwhile has them collected after the block (the pause is process-wide)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def parse_cache_clear() -> None:
    """Empty the parse cache (tests, long-lived workers)."""
    _parse_cached.cache_clear()
    _parse_plain.cache_clear()
