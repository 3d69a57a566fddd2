"""Formula templates: a formula with dopant placeholders and amounts that are expressions of grid variables.

Grammar (the template never reaches ``parse_formula``; it is compiled once, then evaluated on NumPy
arrays for a whole block of candidates)::

    template   := component (SEP component)*        SEP: "-", "+" or "·" (outside braces)
    component  := [coef] item+                      the composition is the coefficient-weighted sum
    coef       := NUMBER | "{" expr "}"
    item       := (ELEMENT | "{M}" | "{M2}" | "(" item+ ")" | "[" item+ "]") [amount]
    amount     := NUMBER | "{" expr "}"
    expr       := arithmetic (+ - * / and parentheses) over numbers, the grid variables (lower-case
                  names declared by the spec, e.g. x, y) and the dopant valences v (of M) and v2 (of M2)

Examples (all seed families)::

    Na{0.6+x*(4-v)}Li0.2Mn{0.8-x}{M}{x}O2      P2 substitution with Na compensation
    {x}Na2O2-{M}Cl{v}                         oxychloride x Na2O2 + MCl_y with y = valence of M
    Na{2+x*(4-v)}Zr{1-x}{M}{x}Cl6             halide, aliovalent M on Zr, Na balances
    Na{3-x}{M}{1-x}Zr{x}Cl6                   Na3MCl6 with Zr4+ on the M3+ site
    Na{1+x+y*(4-v)}Zr{2-y}{M}{y}Si{x}P{3-x}O12    NASICON with M on Zr

Expressions are checked against a whitelist of AST nodes before they are compiled, so a template from
a file can only do arithmetic.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import CodeType

import numpy as np

from featurize.elements import is_element

__all__ = [
    "PLACEHOLDERS",
    "VALENCE_NAMES",
    "Expr",
    "FormulaTemplate",
    "TemplateError",
    "parse_expr",
    "parse_template",
]

#: Dopant placeholders and the name of each one's valence inside expressions.
PLACEHOLDERS: tuple[str, ...] = ("M", "M2")
VALENCE_NAMES: dict[str, str] = {"M": "v", "M2": "v2"}

_ALLOWED_NODES = (
    ast.Expression,
    ast.BinOp,
    ast.UnaryOp,
    ast.Constant,
    ast.Name,
    ast.Load,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.USub,
    ast.UAdd,
)
_NUMBER_RE = re.compile(r"\d+(?:\.\d*)?|\.\d+")
_ELEMENT_RE = re.compile(r"[A-Z][a-z]?")
_VARIABLE_RE = re.compile(r"^[a-z][a-z0-9_]*$")
#: An amount expression is a few terms; longer text is refused before Python's parser sees it (a deeply
#: nested or 2,000-term expression would otherwise exhaust the parser's recursion limit).
MAX_EXPRESSION_CHARS = 400
MAX_TEMPLATE_CHARS = 1000


class TemplateError(ValueError):
    """A template or expression that cannot be compiled; the message quotes it and says what is wrong."""


@dataclass(frozen=True)
class Expr:
    """A compiled arithmetic expression over named variables (evaluated with NumPy broadcasting)."""

    text: str
    names: frozenset[str]

    def evaluate(self, env: Mapping[str, np.ndarray | float], n: int) -> np.ndarray:
        """Value for ``n`` rows; ``env`` maps every name to a scalar or an array of length ``n``."""
        code = _compile(self.text)
        value = eval(code, {"__builtins__": {}}, dict(env))  # AST whitelisted in parse_expr
        return np.broadcast_to(np.asarray(value, dtype=float), (n,)).astype(float, copy=True)


_CODE_CACHE: dict[str, CodeType] = {}


def _compile(text: str) -> CodeType:
    code = _CODE_CACHE.get(text)
    if code is None:
        code = compile(ast.parse(text, mode="eval"), "<template>", "eval")
        _CODE_CACHE[text] = code
    return code


def parse_expr(text: str, allowed_names: frozenset[str] | set[str]) -> Expr:
    """Check ``text`` is plain arithmetic over ``allowed_names``; raise TemplateError naming it if not."""
    if len(text) > MAX_EXPRESSION_CHARS:
        raise TemplateError(
            f"expression {text[:40]!r}...: longer than {MAX_EXPRESSION_CHARS} characters; not an amount"
        )
    try:
        tree = ast.parse(text.strip(), mode="eval")
        canonical = ast.unparse(tree)
    except SyntaxError:
        raise TemplateError(f"expression {text!r}: not valid arithmetic") from None
    except (RecursionError, MemoryError):
        raise TemplateError(f"expression {text[:40]!r}...: nested too deeply") from None
    names: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise TemplateError(f"expression {text!r}: only + - * / and parentheses are allowed")
        if isinstance(node, ast.Constant) and (
            isinstance(node.value, bool) or not isinstance(node.value, int | float)
        ):
            raise TemplateError(f"expression {text!r}: constant {node.value!r} is not a number")
        if isinstance(node, ast.Name):
            if node.id not in allowed_names:
                known = ", ".join(sorted(allowed_names)) or "none"
                raise TemplateError(f"expression {text!r}: unknown variable {node.id!r} (known: {known})")
            names.add(node.id)
    return Expr(text=canonical, names=frozenset(names))


@dataclass(frozen=True)
class Term:
    """One species of the template with its total amount expression (coefficients multiplied in)."""

    species: str  # element symbol, or a placeholder "M" / "M2"
    amount: Expr

    @property
    def is_placeholder(self) -> bool:
        return self.species in PLACEHOLDERS


@dataclass(frozen=True)
class FormulaTemplate:
    """A compiled template: terms in written order (an element may occur in several terms)."""

    text: str
    terms: tuple[Term, ...]

    @property
    def placeholders(self) -> tuple[str, ...]:
        return tuple(p for p in PLACEHOLDERS if any(t.species == p for t in self.terms))

    @property
    def names(self) -> frozenset[str]:
        out: set[str] = set()
        for t in self.terms:
            out |= t.amount.names
        return frozenset(out)

    def amounts(
        self, dopants: Mapping[str, str], env: Mapping[str, np.ndarray | float], n: int
    ) -> tuple[tuple[str, ...], np.ndarray]:
        """Element order (first appearance) and the (n, n_elements) amount matrix for one dopant choice."""
        order: dict[str, int] = {}
        columns: list[np.ndarray] = []
        for term in self.terms:
            el = dopants[term.species] if term.is_placeholder else term.species
            value = term.amount.evaluate(env, n)
            if el in order:
                columns[order[el]] = columns[order[el]] + value
            else:
                order[el] = len(columns)
                columns.append(value)
        matrix = np.column_stack(columns) if columns else np.zeros((n, 0))
        return tuple(order), matrix


class _Parser:
    def __init__(self, text: str, allowed: frozenset[str]) -> None:
        self.text = text
        self.allowed = allowed
        self.pos = 0

    def error(self, problem: str) -> TemplateError:
        return TemplateError(f"template {self.text!r}: {problem} at position {self.pos}")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def brace(self) -> str:
        end = self.text.find("}", self.pos)
        if end < 0:
            raise self.error("unclosed '{'")
        inner = self.text[self.pos + 1 : end]
        self.pos = end + 1
        return inner.strip()

    def number(self) -> str | None:
        m = _NUMBER_RE.match(self.text, self.pos)
        if not m:
            return None
        self.pos = m.end()
        return m.group(0)

    def amount(self) -> str:
        if self.peek() == "{":
            start = self.pos
            inner = self.brace()
            if inner in PLACEHOLDERS:  # "{M}" right after an item is the next item, not an amount
                self.pos = start
                return "1"
            parse_expr(inner, self.allowed)
            return f"({inner})"
        num = self.number()
        return num if num is not None else "1"

    def items(self, closing: str) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        while True:
            c = self.peek()
            if c in ("", "-", "+", "·") or (closing and c == closing):
                break
            if c in "([":
                close = ")" if c == "(" else "]"
                self.pos += 1
                inner = self.items(close)
                if self.peek() != close:
                    raise self.error(f"expected {close!r}")
                self.pos += 1
                mult = self.amount()
                out.extend((sp, f"{mult}*{amt}") for sp, amt in inner)
            elif c == "{":
                start = self.pos
                inner_text = self.brace()
                if inner_text not in PLACEHOLDERS:
                    self.pos = start
                    raise self.error(f"'{{{inner_text}}}' is not a placeholder here (use {{M}} or {{M2}})")
                out.append((inner_text, self.amount()))
            elif c.isupper():
                m = _ELEMENT_RE.match(self.text, self.pos)
                assert m is not None
                sym = m.group(0)
                if not is_element(sym):
                    raise self.error(f"unknown element {sym!r}")
                self.pos = m.end()
                out.append((sym, self.amount()))
            elif c.isspace():
                self.pos += 1
            else:
                raise self.error(f"unexpected character {c!r}")
        if not out:
            raise self.error("empty component")
        return out

    def component(self) -> list[tuple[str, str]]:
        while self.peek().isspace():
            self.pos += 1
        coef = "1"
        if self.peek() == "{":
            start = self.pos
            inner = self.brace()
            if inner in PLACEHOLDERS:
                self.pos = start
            else:
                parse_expr(inner, self.allowed)
                coef = f"({inner})"
        else:
            num = self.number()
            if num is not None:
                coef = num
        return [(sp, f"{coef}*{amt}") for sp, amt in self.items("")]

    def parse(self) -> list[tuple[str, str]]:
        terms = self.component()
        while self.peek() in ("-", "+", "·"):
            self.pos += 1
            terms.extend(self.component())
        if self.pos != len(self.text):
            raise self.error(f"unexpected {self.peek()!r}")
        return terms


def parse_template(text: str, variables: frozenset[str] | set[str]) -> FormulaTemplate:
    """Compile a template over the declared grid ``variables`` (valences v, v2 are always allowed)."""
    if not isinstance(text, str) or not text.strip():
        raise TemplateError(f"template {text!r}: empty")
    for name in variables:
        if not _VARIABLE_RE.match(name) or name in VALENCE_NAMES.values():
            raise TemplateError(f"template {text!r}: variable name {name!r} must be lower-case and not v/v2")
    if len(text) > MAX_TEMPLATE_CHARS:
        raise TemplateError(f"template {text[:40]!r}...: longer than {MAX_TEMPLATE_CHARS} characters")
    allowed = frozenset(variables) | frozenset(VALENCE_NAMES.values())
    try:
        raw = _Parser(text.strip(), allowed).parse()
    except RecursionError:
        raise TemplateError(f"template {text[:40]!r}...: nested too deeply") from None
    terms = tuple(Term(species=sp, amount=parse_expr(amt, allowed)) for sp, amt in raw)
    tmpl = FormulaTemplate(text=text.strip(), terms=terms)
    if "M2" in tmpl.placeholders and "M" not in tmpl.placeholders:
        raise TemplateError(f"template {text!r}: uses {{M2}} without {{M}}")
    for p in PLACEHOLDERS:
        if VALENCE_NAMES[p] in tmpl.names and p not in tmpl.placeholders:
            raise TemplateError(f"template {text!r}: uses valence {VALENCE_NAMES[p]} without {{{p}}}")
    return tmpl
