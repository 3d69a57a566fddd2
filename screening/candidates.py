"""Candidate generation: every (template, dopant, co-dopant, grid point) of a spec, by index.

Candidate ``0`` is the undoped host (``is_host``), the reference rankings compare against. Candidate
``i >= 1`` is decoded from ``i - 1`` in mixed radix over (template, dopant option, co-dopant option,
grid variables in declared order), so ``candidate_chunk(spec, start, stop)`` regenerates any slice from
the spec alone (a worker needs nothing else) and the union of chunks is the whole space, in order.

A chunk is built block by block (one block = one template and dopant choice): amounts are evaluated
as an (n, n_elements) NumPy matrix, rounded to the formula's decimals (what is checked is what is
written), then checked in this order; the first failed check is the row's reason:

1. duplicate co-doping (the same element twice on one site; a swapped dopant pair),
2. a negative amount ("Na content would be negative (-0.05)"),
3. the compensation's own limit (vacancies can only remove atoms; a variable-valence metal must stay
   in its range: "not charge balanced: needs Mn above +4 (+4.29)"),
4. ``featurize.oxidation.charge_balance_batch``, the project's neutrality check.

Rejected rows are returned with their reason, never dropped. Formulas are built per column from the
few distinct amounts (fixed decimals, trailing zeros stripped) so no per-candidate Python parsing runs.
"""

from __future__ import annotations

import functools
import itertools
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from featurize.composition import CompositionError, parse_formula
from featurize.oxidation import assign_oxidation_states, charge_balance_batch
from models.conditions import NUMERIC_CONDITIONS
from screening.schema import CANDIDATE_COLUMNS, REJECTED_COLUMNS, RejectCode
from screening.spec import DopantOption, ScreeningSpec, candidate_space_size, format_amount
from screening.templates import VALENCE_NAMES

__all__ = ["ACCEPTED_COLUMNS", "REJECTED_COLUMNS", "CandidateChunk", "candidate_chunk", "count_candidates"]

log = logging.getLogger(__name__)

ACCEPTED_COLUMNS = CANDIDATE_COLUMNS  # declared in screening.schema

#: assign_oxidation_states is called (for an explanatory reason) at most this many times per chunk.
MAX_REASON_LOOKUPS = 200
_TOL = 1e-9
_SMALL = 4096


@dataclass(frozen=True)
class CandidateChunk:
    """The candidates of one id range: accepted (charge-neutral) and rejected (with reason code + reason)."""

    accepted: pd.DataFrame
    rejected: pd.DataFrame


def count_candidates(spec: ScreeningSpec) -> int:
    """Number of candidates (host reference included): the valid range of candidate ids is [0, n)."""
    return candidate_space_size(spec)


def _dims(spec: ScreeningSpec) -> tuple[int, ...]:
    return (
        len(spec.templates),
        max(len(spec.dopants), 1),
        max(len(spec.dopants2), 1),
        *(len(g.values) for g in spec.grids),
    )


@functools.lru_cache(maxsize=65536)
def _amount_text(symbol: str, value: float, decimals: int) -> str:
    return "" if abs(value) < _TOL else symbol + format_amount(value, decimals)


def _format_column(values: np.ndarray, symbol: str, decimals: int) -> np.ndarray | str:
    first = float(values[0])
    if (values == first).all():  # most columns of a block are constant: one string, broadcast by "+"
        return _amount_text(symbol, first, decimals)
    if values.size <= _SMALL:  # a dict lookup per row beats hashing overhead on small blocks
        return np.array([_amount_text(symbol, v, decimals) for v in values.tolist()], dtype=object)
    codes, uniq = pd.factorize(values)
    texts = np.array([_amount_text(symbol, float(u), decimals) for u in uniq], dtype=object)
    return texts[codes]


def _formulas(elements: tuple[str, ...], amounts: np.ndarray, decimals: int) -> np.ndarray:
    out = np.full(amounts.shape[0], "", dtype=object)
    for j, sym in enumerate(elements):
        out = out + _format_column(amounts[:, j], sym, decimals)
    return out


@dataclass
class _Block:
    ids: np.ndarray
    formula: np.ndarray
    reason: np.ndarray
    code: np.ndarray  # RejectCode values ("" while accepted)
    columns: dict[str, object]


def _charge_reason(formula: str, allow_peroxide: bool) -> str:
    try:
        oxi = assign_oxidation_states(parse_formula(formula), allow_peroxide=allow_peroxide)
    except CompositionError as exc:
        return f"invalid formula: {exc}"
    return oxi.reason or "no charge-neutral assignment within the allowed oxidation states"


class _Rejections:
    """Per row: the first failed check's sentence and code ("" while the row is still accepted)."""

    def __init__(self, n: int) -> None:
        self.reason = np.full(n, "", dtype=object)
        self.code = np.full(n, "", dtype=object)

    def __call__(self, mask: np.ndarray, text: np.ndarray | str, why: RejectCode) -> None:
        new = mask & (self.reason == "")
        self.reason[new] = text[new] if isinstance(text, np.ndarray) else text
        self.code[new] = why.value


def _reject_duplicates(
    spec: ScreeningSpec,
    opt1: DopantOption | None,
    opt2: DopantOption | None,
    d1: int,
    d2: int,
    n: int,
    reject: _Rejections,
) -> None:
    same_site = spec.form == "template" or spec.site == spec.site2
    if opt1 is None or opt2 is None or not same_site:
        return
    every = np.ones(n, dtype=bool)
    if opt1.element == opt2.element:
        reject(every, f"co-dopant {opt2.element} equals the dopant on the same site", RejectCode.DUPLICATE)
    elif (
        spec.form == "substitution"
        and spec.dopants == spec.dopants2
        and spec.grids[0].values == spec.grids[1].values
        and d1 > d2
    ):
        reject(every, "duplicate: the same candidate with dopant and co-dopant swapped", RejectCode.DUPLICATE)


def _reject_negative(elements: tuple[str, ...], amounts: np.ndarray, reject: _Rejections) -> None:
    neg = amounts < -_TOL
    if not neg.any():
        return
    first = np.argmax(neg, axis=1)
    texts = np.full(amounts.shape[0], "", dtype=object)
    for r in np.flatnonzero(neg.any(axis=1)):
        texts[r] = f"{elements[first[r]]} content would be negative ({amounts[r, first[r]]:g})"
    reject(np.asarray(neg.any(axis=1)), texts, RejectCode.NEGATIVE_AMOUNT)


def _reject_compensation(
    spec: ScreeningSpec,
    elements: tuple[str, ...],
    amounts: np.ndarray,
    dopants: dict[str, str],
    env: dict[str, np.ndarray | float],
    opt1: DopantOption | None,
    opt2: DopantOption | None,
    reject: _Rejections,
) -> None:
    comp = spec.compensation
    if spec.form != "substitution" or opt1 is None or comp.element is None:
        return
    n = amounts.shape[0]
    charge = np.asarray(env["x"], dtype=float) * (opt1.valence - _state(spec, spec.site))
    if opt2 is not None:
        charge = charge + np.asarray(env["x2"], dtype=float) * (opt2.valence - _state(spec, spec.site2))
    if comp.mode == "vacancy":
        removed = np.broadcast_to(charge / _state(spec, comp.element), (n,))
        reject(
            removed < -_TOL,
            f"vacancy compensation on the {comp.element} site cannot balance this dopant "
            f"(it would need extra {comp.element}, not vacancies)",
            RejectCode.COMPENSATION_LIMIT,
        )
    elif comp.mode == "variable_valence":
        _variable_valence(spec, elements, amounts, dopants, env, opt1, opt2, reject)


def _reject_unbalanced(
    spec: ScreeningSpec,
    elements: tuple[str, ...],
    amounts: np.ndarray,
    formula: np.ndarray,
    reject: _Rejections,
    lookups: list[int],
) -> None:
    """The project's neutrality check on the rows still accepted (explained for the first few)."""
    todo = np.flatnonzero(reject.reason == "")
    if not todo.size:
        return
    _, balanced = charge_balance_batch(list(elements), amounts[todo], allow_peroxide=spec.allow_peroxide)
    bad = todo[~np.asarray(balanced, dtype=bool)]
    reject.code[bad] = RejectCode.NOT_CHARGE_BALANCED.value
    for r in bad:
        if lookups[0] < MAX_REASON_LOOKUPS:
            lookups[0] += 1
            reject.reason[r] = "not charge balanced: " + _charge_reason(str(formula[r]), spec.allow_peroxide)
        else:
            reject.reason[r] = "not charge balanced within the allowed oxidation states"


def _block_columns(
    spec: ScreeningSpec,
    template_text: str,
    opt1: DopantOption | None,
    opt2: DopantOption | None,
    env: dict[str, np.ndarray | float],
) -> dict[str, object]:
    g0 = spec.grids[0] if spec.grids else None
    g1 = spec.grids[1] if len(spec.grids) > 1 else None
    columns: dict[str, object] = {
        "template": template_text,
        "dopant": opt1.element if opt1 else "",
        "dopant_valence": opt1.valence if opt1 else np.nan,
        "fraction": env[g0.name] if g0 else np.nan,
        "dopant2": opt2.element if opt2 else "",
        "dopant2_valence": opt2.valence if opt2 else np.nan,
        "fraction2": env[g1.name] if g1 else np.nan,
    }
    if spec.form == "template":
        for g in spec.grids:
            columns[f"var_{g.name}"] = env[g.name]
    return columns


def _block(
    spec: ScreeningSpec, ids: np.ndarray, digits: tuple[np.ndarray, ...], lookups: list[int]
) -> _Block:
    """One template and dopant choice over a run of grid points: formulas, then the checks in order."""
    t, d1, d2 = int(digits[0][0]), int(digits[1][0]), int(digits[2][0])
    n = ids.size
    template = spec.templates[t]
    opt1 = spec.dopants[d1] if spec.dopants else None
    opt2 = spec.dopants2[d2] if spec.dopants2 else None
    env: dict[str, np.ndarray | float] = {}
    for g, dig in zip(spec.grids, digits[3:], strict=True):
        env[g.name] = np.asarray(g.values, dtype=float)[dig]
    dopants: dict[str, str] = {}
    if opt1 is not None:
        dopants["M"], env[VALENCE_NAMES["M"]] = opt1.element, opt1.valence
    if opt2 is not None:
        dopants["M2"], env[VALENCE_NAMES["M2"]] = opt2.element, opt2.valence
    elements, amounts = template.amounts(dopants, env, n)
    amounts = np.round(amounts, spec.decimals) + 0.0  # "+ 0.0" turns -0.0 into 0.0
    formula = _formulas(elements, amounts, spec.decimals)
    reject = _Rejections(n)
    _reject_duplicates(spec, opt1, opt2, d1, d2, n, reject)  # 1.
    _reject_negative(elements, amounts, reject)  # 2.
    _reject_compensation(spec, elements, amounts, dopants, env, opt1, opt2, reject)  # 3.
    _reject_unbalanced(spec, elements, amounts, formula, reject, lookups)  # 4.
    columns = _block_columns(spec, template.text, opt1, opt2, env)
    return _Block(ids=ids, formula=formula, reason=reject.reason, code=reject.code, columns=columns)


def _state(spec: ScreeningSpec, element: str | None) -> float:
    state = spec.state(str(element))
    if state is None:
        raise ValueError(f"{element}: no oxidation state in the host {spec.host!r}")
    return state


def _variable_valence(
    spec: ScreeningSpec,
    elements: tuple[str, ...],
    amounts: np.ndarray,
    dopants: dict[str, str],
    env: dict[str, np.ndarray | float],
    opt1: DopantOption,
    opt2: DopantOption | None,
    reject: _Rejections,
) -> None:
    comp = spec.compensation
    e = str(comp.element)
    assert comp.valence_range is not None
    lo, hi = comp.valence_range
    n = amounts.shape[0]
    others = np.zeros(n)
    for j, sym in enumerate(elements):
        if sym == e:
            continue
        s_host = spec.state(sym)
        if s_host is not None:
            others += amounts[:, j] * s_host
    for opt, name, xname in ((opt1, "M", "x"), (opt2, "M2", "x2")):
        if opt is None or name not in dopants:
            continue
        if opt.element == e:  # the dopant is the variable metal itself: its charge floats with it
            continue
        s_host = spec.state(opt.element)
        x = np.asarray(env[xname], dtype=float)
        others += x * (opt.valence - (s_host if s_host is not None else 0.0))
    a_e = amounts[:, elements.index(e)] if e in elements else np.zeros(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        need = np.where(a_e > _TOL, -others / np.where(a_e > _TOL, a_e, 1.0), np.nan)
    gone = a_e <= _TOL
    reject(
        gone & (np.abs(others) > 1e-6),
        f"not charge balanced: {e} fully substituted and the rest is not neutral",
        RejectCode.NOT_CHARGE_BALANCED,
    )
    high = need > hi + 1e-6
    low = need < lo - 1e-6
    with_ = f" with {opt1.element}{opt1.valence:+g}" + (f", {opt2.element}{opt2.valence:+g}" if opt2 else "")
    for mask, word, bound in ((high, "above", hi), (low, "below", lo)):
        if mask.any():
            codes, uniq = pd.factorize(np.round(need[mask], 2))
            words = np.array(
                [f"not charge balanced: needs {e} {word} {bound:+g} ({v:+.2f}){with_}" for v in uniq],
                dtype=object,
            )
            texts = np.full(n, "", dtype=object)
            texts[mask] = words[codes]
            reject(mask, texts, RejectCode.NOT_CHARGE_BALANCED)


def _frame(spec: ScreeningSpec, blocks: list[_Block], accepted: bool) -> pd.DataFrame:
    """The accepted (or rejected) rows of the blocks as one frame, built in one go from whole columns: a
    block's scalar columns are repeated, the spec's constants broadcast, and every column gets its final
    dtype before the frame exists (assigning ~20 columns one by one to a frame cost ~8 ms per request)."""
    masks = [(b.reason == "") if accepted else (b.reason != "") for b in blocks]
    sizes = [int(m.sum()) for m in masks]
    cols = _columns(spec, accepted)
    if not any(sizes):
        return pd.DataFrame({c: np.empty(0, dtype=_dtype(c)) for c in cols})

    def joined(values: list[object], dtype: type) -> np.ndarray:
        return np.concatenate(
            [
                np.asarray(v[m], dtype=dtype) if isinstance(v, np.ndarray) else np.full(k, v, dtype=dtype)
                for v, m, k in zip(values, masks, sizes, strict=True)
            ]
        )

    data: dict[str, np.ndarray] = {
        "candidate_id": joined([b.ids for b in blocks], np.int64),
        "formula": joined([b.formula for b in blocks], object),
    }
    for key in blocks[0].columns:
        data[key] = joined([b.columns[key] for b in blocks], float if _dtype(key) == "float64" else object)
    if accepted:
        data.update(_spec_columns(spec, data["candidate_id"] == 0, data["dopant2"]))
    else:
        data["reason_code"] = joined([b.code for b in blocks], object)
        data["reason"] = joined([b.reason for b in blocks], object)
    return pd.DataFrame({c: data[c] for c in cols})


def _spec_columns(spec: ScreeningSpec, is_host: np.ndarray, dopant2: np.ndarray) -> dict[str, np.ndarray]:
    """The accepted rows' columns that come from the spec (constants; the host row has no site)."""
    n = is_host.size

    def const(value: object) -> np.ndarray:
        return np.full(n, value, dtype=object)

    site, site2 = const(spec.site or ""), const(spec.site2 or "")
    site[is_host] = ""
    site2[is_host | (dopant2 == "")] = ""
    c = spec.conditions
    out = {
        "is_host": is_host,
        "family": const(spec.family.name),
        "structure_type": const(spec.family.structure_type or ""),
        "host": const(spec.host_formula),
        "site": site,
        "site2": site2,
        "compensation": const(spec.compensation.mode),
        "phase": const(spec.phase),
        "working_ion": const(c.working_ion),
    }
    for name in NUMERIC_CONDITIONS:
        value = getattr(c, name)
        out[name] = np.full(n, np.nan if value is None else float(value))
    return out


def _host_block(spec: ScreeningSpec) -> _Block:
    columns: dict[str, object] = {
        "template": "",
        "dopant": "",
        "dopant_valence": np.nan,
        "fraction": 0.0,
        "dopant2": "",
        "dopant2_valence": np.nan,
        "fraction2": np.nan if len(spec.grids) < 2 else 0.0,
    }
    if spec.form == "template":
        for g in spec.grids:
            columns[f"var_{g.name}"] = np.nan
    return _Block(
        ids=np.array([0], dtype=np.int64),
        formula=np.array([spec.host_formula], dtype=object),
        reason=np.array([""], dtype=object),
        code=np.array([""], dtype=object),
        columns=columns,
    )


def _columns(spec: ScreeningSpec, accepted: bool) -> list[str]:
    """The columns of the accepted (or rejected) frame, in order."""
    extra = [f"var_{g.name}" for g in spec.grids] if spec.form == "template" else []
    if accepted:
        return [*ACCEPTED_COLUMNS, *extra]
    tail = ["reason_code", "reason"]
    return [c for c in REJECTED_COLUMNS if c not in tail] + extra + tail


def _dtype(col: str) -> str:
    if col == "candidate_id":
        return "int64"
    if col == "is_host":
        return "bool"
    if col.startswith(("fraction", "var_", "cycles", "current", "voltage")) or col.endswith("valence"):
        return "float64"
    return "object"


def candidate_chunk(spec: ScreeningSpec, start: int, stop: int) -> CandidateChunk:
    """Candidates with ids in [start, stop): accepted (neutral) and rejected (with reason) frames."""
    total = count_candidates(spec)
    if not (0 <= start <= stop <= total):
        raise ValueError(f"candidate_chunk: range [{start}, {stop}) outside [0, {total})")
    blocks: list[_Block] = []
    host_in = start == 0 and stop > 0
    if host_in:
        blocks.append(_host_block(spec))
    lo = max(start, 1)
    if stop > lo:
        ids = np.arange(lo, stop, dtype=np.int64)
        dims = _dims(spec)
        digits = np.unravel_index(ids - 1, dims)
        key = (digits[0] * dims[1] + digits[1]) * dims[2] + digits[2]
        cuts = np.flatnonzero(np.diff(key)) + 1
        bounds = [0, *cuts.tolist(), ids.size]
        lookups = [0]
        for a, b in itertools.pairwise(bounds):
            blocks.append(_block(spec, ids[a:b], tuple(d[a:b] for d in digits), lookups))
    accepted = _frame(spec, blocks, True)
    rejected = _frame(spec, blocks, False)
    log.debug("chunk [%d, %d): %d accepted, %d rejected", start, stop, len(accepted), len(rejected))
    return CandidateChunk(accepted=accepted, rejected=rejected)
