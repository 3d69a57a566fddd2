"""FROZEN: the charge-balance rules of nascreen 0.x that ``oxidation_v1`` (and so ``composite_v1``) was
defined with. Feature sets are versioned contracts (see ``featurize.featuresets``): models trained on
``composite_v1`` must get the same columns back, so this copy is kept unchanged and is used by
``OxidationV1`` only. Everything else uses ``featurize.oxidation`` (the current rules, ``oxidation_v2``).

Fast, deterministic charge-balance assignment for fractional, mixed-valence compositions.

Model (documented, table-driven, vectorised over a batch):

* Every element has a CATION entry ``(lo, hi, preferred)`` (positive states; from pymatgen's
  ``common_oxidation_states`` and ``icsd_oxidation_states`` with battery-relevant overrides in
  ``_CATION_OVERRIDES``) and possibly an ANION entry (F/Cl/Br/I -1, O -2, N -3, S/Se/Te -2,
  P/As/Sb -3, C -4, H -1).
* Roles. "Hard" anions F, Cl, Br, I, O, N are anions whenever present (oxychlorides, oxyfluorides,
  oxynitrides like LiPON work; perchlorates, iodates, nitrates are out of scope and come out
  unbalanced). Among the "soft" anion formers (S, Se, Te, P, As, Sb, C, H) the most electronegative
  one present is an anion iff neither O nor F is present (Na3PS4: S anion, P +5; Na6PS5Cl: S anion;
  Na3P: P anion; NaBH4: H anion) - with O or F they are polyanion centres (sulfate S +6, phosphate
  P +5, carbonate C +4, hydroxide H +1). If that first configuration cannot balance, the soft anion
  former is made an anion even with O/F present (oxysulfides such as Na3PS3O). Everything else is a
  cation.
* A balanced assignment exists iff ``sum x_i lo_i <= 0 <= sum x_i hi_i`` (x = atomic fractions).
  It is computed by starting every element at its preferred state and moving the charge deficit
  onto variable-valence elements in a fixed priority order, each up to its bound (cumulative sums
  over the priority-sorted columns, so the batch path is pure NumPy):
  - more positive charge needed (Na-poor, charged cathodes): ``RAISE_ORDER`` (Mn, V, Ti, Cr, Fe,
    Ni, Co, Cu, ... , other cations by Z), oxygen last;
  - less positive charge needed: ``LOWER_ORDER`` (Mn, Co, Ni, Cu, Fe, V, Cr, Ti, ...).
  So NaFe0.5Mn0.5O2 gives Fe +3 / Mn +3 and NaNi0.5Mn0.5O2 gives Ni +2 / Mn +4.
* Oxygen may rise from -2 to -1 (peroxide O2^2-, or oxygen holes in charged O-redox cathodes), but
  only after every cation is at its maximum. This is what the summed mixture notation needs:
  Na2O2-HfCl4 = Na2HfO2Cl4 is 2(+1) + 4 - 4(1) = +2 short with O -2 (Hf cannot exceed +4), and is
  exactly neutral with the peroxide O -1 that the Na2O2 reactant carries. ``allow_peroxide=False``
  pins O at -2 for a strict neutrality check; the assignment records the peroxide use in ``notes``.

Absent elements get NaN states in the batch output (they have no oxidation state); unbalanced rows get
the closest assignment (every variable element at its bound) and ``balanced=False``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
from numpy.typing import NDArray
from pymatgen.core import Element

from featurize.composition import Composition
from featurize.elements import ELEMENTS, atomic_number

__all__ = [
    "ANION_STATES",
    "CHARGE_TOLERANCE",
    "HARD_ANIONS",
    "LOWER_ORDER",
    "RAISE_ORDER",
    "SOFT_ANIONS",
    "CationStates",
    "OxidationAssignment",
    "assign_oxidation_states",
    "cation_states",
    "charge_balance_batch",
]

#: Net charge per atom below which a composition counts as neutral (amounts are rounded to 1e-8).
CHARGE_TOLERANCE = 1e-6
#: Rows per block in the batch path (keeps the (rows, k) temporaries in cache).
_CHUNK_ROWS = 2048


@dataclass(frozen=True)
class CationStates:
    lo: float
    hi: float
    preferred: float


# (lo, hi, preferred). Alkali/alkaline-earth fixed; Mn +2..+4 (Mn7+ only exists in permanganates, which
# no battery material here is; allowing it would make almost any Mn oxide "balance"); Ru +3..+5;
# P fixed +5 (phosphates); S +4..+6 as a cation (sulfite/sulfate).
_CATION_OVERRIDES: dict[str, tuple[float, float, float]] = {
    "H": (1, 1, 1),
    "Li": (1, 1, 1), "Na": (1, 1, 1), "K": (1, 1, 1), "Rb": (1, 1, 1), "Cs": (1, 1, 1),
    "Be": (2, 2, 2), "Mg": (2, 2, 2), "Ca": (2, 2, 2), "Sr": (2, 2, 2), "Ba": (2, 2, 2),
    "B": (3, 3, 3), "Al": (3, 3, 3), "Ga": (3, 3, 3), "In": (3, 3, 3), "Tl": (1, 3, 1),
    "C": (2, 4, 4), "Si": (4, 4, 4), "Ge": (2, 4, 4), "Sn": (2, 4, 4), "Pb": (2, 4, 2),
    "N": (3, 5, 5), "P": (5, 5, 5), "As": (3, 5, 5), "Sb": (3, 5, 5), "Bi": (3, 5, 3),
    "S": (4, 6, 6), "Se": (4, 6, 4), "Te": (4, 6, 4),
    "Sc": (3, 3, 3), "Ti": (3, 4, 4), "V": (2, 5, 3), "Cr": (2, 6, 3), "Mn": (2, 4, 4),
    "Fe": (2, 4, 3), "Co": (2, 4, 3), "Ni": (2, 4, 2), "Cu": (1, 3, 2), "Zn": (2, 2, 2),
    "Y": (3, 3, 3), "Zr": (4, 4, 4), "Nb": (3, 5, 5), "Mo": (3, 6, 6), "Ru": (3, 5, 4),
    "Rh": (3, 4, 3), "Pd": (2, 4, 2), "Ag": (1, 1, 1), "Cd": (2, 2, 2),
    "Hf": (4, 4, 4), "Ta": (4, 5, 5), "W": (4, 6, 6), "Re": (4, 7, 4), "Os": (4, 6, 4),
    "Ir": (3, 5, 4), "Pt": (2, 4, 4), "Au": (1, 3, 3), "Hg": (1, 2, 2),
    "La": (3, 3, 3), "Ce": (3, 4, 3), "Pr": (3, 4, 3), "Nd": (3, 3, 3), "Pm": (3, 3, 3),
    "Sm": (2, 3, 3), "Eu": (2, 3, 3), "Gd": (3, 3, 3), "Tb": (3, 4, 3), "Dy": (3, 3, 3),
    "Ho": (3, 3, 3), "Er": (3, 3, 3), "Tm": (3, 3, 3), "Yb": (2, 3, 3), "Lu": (3, 3, 3),
}  # fmt: skip

#: Anion states (lo, hi). Only O has a range (peroxide / oxygen hole, used last).
ANION_STATES: MappingProxyType[str, tuple[float, float]] = MappingProxyType(
    {
        "F": (-1, -1), "Cl": (-1, -1), "Br": (-1, -1), "I": (-1, -1),
        "O": (-2, -1), "N": (-3, -3),
        "S": (-2, -2), "Se": (-2, -2), "Te": (-2, -2),
        "P": (-3, -3), "As": (-3, -3), "Sb": (-3, -3), "C": (-4, -4), "H": (-1, -1),
    }
)  # fmt: skip
HARD_ANIONS = frozenset({"F", "Cl", "Br", "I", "O", "N"})
SOFT_ANIONS = frozenset(ANION_STATES) - HARD_ANIONS
#: Soft anion formers become polyanion centres (cations) next to these.
_OXO = ("O", "F")

RAISE_ORDER: tuple[str, ...] = ("Mn", "V", "Ti", "Cr", "Fe", "Ni", "Co", "Cu", "Ru", "Mo", "Nb", "W", "Ce")
LOWER_ORDER: tuple[str, ...] = ("Mn", "Co", "Ni", "Cu", "Fe", "V", "Cr", "Ti", "Ru", "Mo", "Nb", "W", "Ce")


def _default_cation(sym: str) -> CationStates | None:
    el = Element(sym)
    common = [s for s in el.common_oxidation_states if s > 0]
    known = sorted({s for s in (*el.common_oxidation_states, *el.icsd_oxidation_states) if s > 0})
    if not known:
        return None
    pref = min(common) if common else known[0]
    return CationStates(float(known[0]), float(known[-1]), float(pref))


def _build_cations() -> dict[str, CationStates | None]:
    table: dict[str, CationStates | None] = {}
    for sym in ELEMENTS:
        if sym in _CATION_OVERRIDES:
            lo, hi, pref = _CATION_OVERRIDES[sym]
            table[sym] = CationStates(float(lo), float(hi), float(pref))
        else:
            table[sym] = _default_cation(sym)
    for sym in HARD_ANIONS - set(_CATION_OVERRIDES):
        table[sym] = None  # F, Cl, Br, I, O are always anions here
    return table


_CATIONS = _build_cations()


def cation_states(sym: str) -> CationStates | None:
    """The cation entry used for ``sym`` (None: the element never takes a positive state here)."""
    atomic_number(sym)
    return _CATIONS[sym]


def _rank(order: tuple[str, ...], sym: str) -> float:
    return float(order.index(sym)) if sym in order else float(len(order) + atomic_number(sym))


@dataclass(frozen=True)
class _Columns:
    """Per-column constants for a list of elements (cached per element tuple)."""

    elements: tuple[str, ...]
    c_lo: NDArray[np.float64]
    c_hi: NDArray[np.float64]
    c_pref: NDArray[np.float64]
    has_cation: NDArray[np.bool_]
    a_lo: NDArray[np.float64]
    a_hi: NDArray[np.float64]
    hard: NDArray[np.bool_]
    soft: NDArray[np.bool_]
    oxo: NDArray[np.bool_]
    en: NDArray[np.float64]
    raise_order: NDArray[np.intp]
    lower_order: NDArray[np.intp]


_COLUMN_CACHE: dict[tuple[str, ...], _Columns] = {}


def _columns(elements: tuple[str, ...]) -> _Columns:
    cols = _COLUMN_CACHE.get(elements)
    if cols is not None:
        return cols
    for sym in elements:
        atomic_number(sym)  # ValueError naming a bad column
    if len(set(elements)) != len(elements):
        raise ValueError(f"duplicate element columns: {elements}")
    k = len(elements)
    c_lo, c_hi, c_pref = np.zeros(k), np.zeros(k), np.zeros(k)
    has_cation = np.zeros(k, dtype=bool)
    a_lo, a_hi = np.zeros(k), np.zeros(k)
    for j, sym in enumerate(elements):
        cs = _CATIONS[sym]
        if cs is not None:
            c_lo[j], c_hi[j], c_pref[j], has_cation[j] = cs.lo, cs.hi, cs.preferred, True
        if sym in ANION_STATES:
            a_lo[j], a_hi[j] = ANION_STATES[sym]
    en = np.array([Element(s).X if s in SOFT_ANIONS else 0.0 for s in elements], dtype=float)
    n_z = len(ELEMENTS) + 1
    cols = _Columns(
        elements=elements,
        c_lo=c_lo,
        c_hi=c_hi,
        c_pref=c_pref,
        has_cation=has_cation,
        a_lo=a_lo,
        a_hi=a_hi,
        hard=np.array([s in HARD_ANIONS for s in elements]),
        soft=np.array([s in SOFT_ANIONS for s in elements]),
        oxo=np.array([s in _OXO for s in elements]),
        en=en,
        # Hard anions (always anions) move after every cation: only O has room, so O is raised last.
        # Soft anion formers have no room as anions (fixed state), so their cation rank serves both roles.
        raise_order=np.argsort(
            [_rank(RAISE_ORDER, s) + (2.0 * n_z if s in HARD_ANIONS else 0.0) for s in elements],
            kind="stable",
        ),
        lower_order=np.argsort([_rank(LOWER_ORDER, s) for s in elements], kind="stable"),
    )
    if len(_COLUMN_CACHE) < 4096:
        _COLUMN_CACHE[elements] = cols
    return cols


def _fill(
    need: NDArray[np.float64], head: NDArray[np.float64], order: NDArray[np.intp]
) -> NDArray[np.float64]:
    """Distribute ``need`` (n,) >= 0 over headroom (n, k), filling columns in the fixed ``order``."""
    h_sorted = head[:, order]
    before = np.cumsum(h_sorted, axis=1) - h_sorted
    take_sorted = np.clip(need[:, None] - before, 0.0, h_sorted)
    take = np.empty_like(take_sorted)
    take[:, order] = take_sorted
    return take


@dataclass(frozen=True)
class _Solution:
    states: NDArray[np.float64]
    balanced: NDArray[np.bool_]
    anion: NDArray[np.bool_]
    q_lo: NDArray[np.float64]
    q_hi: NDArray[np.float64]
    lo: NDArray[np.float64]
    hi: NDArray[np.float64]


def _solve(cols: _Columns, x: NDArray[np.float64], soft_with_oxo: bool, allow_peroxide: bool) -> _Solution:
    present = x > 0
    if cols.soft.any():
        # the most electronegative soft anion former present in each row
        n_rows = x.shape[0]
        en = np.where(present & cols.soft, cols.en, -np.inf)
        best = np.argmax(en, axis=1)
        has_soft = np.isfinite(en[np.arange(n_rows), best])
        if not soft_with_oxo and cols.oxo.any():
            has_soft &= ~np.any(present & cols.oxo, axis=1)
        soft_anion = np.zeros_like(present)
        soft_anion[np.arange(n_rows), best] = has_soft
        anion = present & (cols.hard | soft_anion)
    else:
        anion = present & cols.hard
    cation = present & ~anion

    a_hi = cols.a_hi if allow_peroxide else cols.a_lo
    # absent elements carry x = 0, so their lo/hi/pref never count
    lo = np.where(anion, cols.a_lo, cols.c_lo)
    hi = np.where(anion, a_hi, cols.c_hi)
    pref = np.where(anion, cols.a_lo, cols.c_pref)
    impossible = ~np.any(anion, axis=1)
    if not cols.has_cation.all():
        impossible |= np.any(cation & ~cols.has_cation, axis=1)

    q_lo = np.sum(x * lo, axis=1)
    q_hi = np.sum(x * hi, axis=1)
    q_pref = np.sum(x * pref, axis=1)
    balanced = (q_lo <= CHARGE_TOLERANCE) & (q_hi >= -CHARGE_TOLERANCE) & ~impossible

    need_up = np.maximum(-q_pref, 0.0)
    need_down = np.maximum(q_pref, 0.0)
    up = _fill(need_up, x * (hi - pref), cols.raise_order)
    down = _fill(need_down, x * (pref - lo), cols.lower_order)
    with np.errstate(invalid="ignore", divide="ignore"):
        states = np.where(present, pref + (up - down) / x, np.nan)
    return _Solution(states, balanced, anion, q_lo, q_hi, lo, hi)


def _as_fractions(amounts: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    a = np.asarray(amounts, dtype=float)
    valid = np.all(np.isfinite(a) & (a >= 0), axis=1)
    a = np.where(valid[:, None], a, 0.0)
    total = a.sum(axis=1)
    valid &= total > 0
    x = a / np.where(valid, total, 1.0)[:, None]
    x[x < 1e-12] = 0.0
    return x, valid


def _batch(
    elements: tuple[str, ...], amounts: NDArray[np.float64], allow_peroxide: bool
) -> tuple[_Solution, NDArray[np.bool_]]:
    cols = _columns(elements)
    x, valid = _as_fractions(amounts)
    first = _solve(cols, x, soft_with_oxo=False, allow_peroxide=allow_peroxide)
    retry = ~first.balanced & valid
    if np.any(retry & np.any((x > 0) & cols.soft[None, :], axis=1)):
        second = _solve(cols, x, soft_with_oxo=True, allow_peroxide=allow_peroxide)
        use2 = (retry & second.balanced)[:, None]
        first = _Solution(
            *(
                np.where(use2 if a.ndim == 2 else use2[:, 0], b, a)
                for a, b in (
                    (first.states, second.states),
                    (first.balanced, second.balanced),
                    (first.anion, second.anion),
                    (first.q_lo, second.q_lo),
                    (first.q_hi, second.q_hi),
                    (first.lo, second.lo),
                    (first.hi, second.hi),
                )
            )
        )
    return first, valid


def charge_balance_batch(
    elements: Sequence[str], amounts: NDArray[np.float64], *, allow_peroxide: bool = True
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Vectorised charge balance: amounts (n, k) over ``elements`` -> (states (n, k), balanced (n,)).

    Rows are scaled to fractions, so any normalisation works. States are NaN for absent elements and
    for invalid rows (a negative or non-finite amount, or all zeros), which are also not balanced.
    Never raises for bad rows; raises ``ValueError`` for bad columns (unknown/duplicate elements) or a
    wrongly shaped matrix.
    """
    els = tuple(elements)
    arr = np.asarray(amounts, dtype=float)
    if arr.ndim != 2 or arr.shape[1] != len(els):
        raise ValueError(f"amounts must have shape (n, {len(els)}), got {arr.shape}")
    if arr.shape[0] == 0:
        return np.zeros((0, len(els))), np.zeros(0, dtype=bool)
    states = np.empty(arr.shape, dtype=float)
    balanced = np.empty(arr.shape[0], dtype=bool)
    for start in range(0, arr.shape[0], _CHUNK_ROWS):  # cache-sized blocks: ~3x faster than one pass
        stop = start + _CHUNK_ROWS
        sol, valid = _batch(els, arr[start:stop], allow_peroxide)
        states[start:stop] = np.where(valid[:, None], sol.states, np.nan)
        balanced[start:stop] = sol.balanced & valid
    return states, balanced


@dataclass(frozen=True)
class OxidationAssignment:
    balanced: bool
    states: dict[str, float]
    reason: str
    notes: tuple[str, ...] = ()


def _fmt(v: float) -> str:
    return f"{v:+.0f}" if float(v).is_integer() else f"{v:+.2f}"


def _reason(comp: Composition, sol: _Solution, x: NDArray[np.float64]) -> str:
    els = comp.elements
    anion = sol.anion[0]
    cols = _columns(els)
    head = f'"{comp.label}": cannot be charge balanced'
    no_cation = [e for j, e in enumerate(els) if not anion[j] and not cols.has_cation[j]]
    if no_cation:
        return f"{head}: {', '.join(no_cation)} takes no positive oxidation state"
    if not anion.any():
        return f"{head}: no anion-forming element (intermetallic or metal)"
    q_lo, q_hi = float(sol.q_lo[0]), float(sol.q_hi[0])
    lo, hi = sol.lo[0], sol.hi[0]
    var = [j for j in range(len(els)) if not anion[j] and hi[j] > lo[j]]
    if q_hi < 0:  # too little positive charge even at the highest states
        short = -q_hi
        if len(var) == 1:
            j = var[0]
            need = hi[j] + short / x[0, j]
            return f"{head}: needs {els[j]} above {_fmt(hi[j])} (would be {_fmt(need)})"
        names = ", ".join(f"{els[j]} {_fmt(hi[j])}" for j in var) or "all cations fixed"
        return f"{head}: too little positive charge at the highest states ({names})"
    excess = q_lo
    if len(var) == 1:
        j = var[0]
        need = lo[j] - excess / x[0, j]
        return f"{head}: needs {els[j]} below {_fmt(lo[j])} (would be {_fmt(need)})"
    names = ", ".join(f"{els[j]} {_fmt(lo[j])}" for j in var) or "all cations fixed"
    return f"{head}: too much positive charge at the lowest states ({names})"


def assign_oxidation_states(comp: Composition, *, allow_peroxide: bool = True) -> OxidationAssignment:
    """Average oxidation state per element of one composition (same algorithm as the batch)."""
    amounts = np.asarray(comp.amounts, dtype=float)[None, :]
    sol, _valid = _batch(comp.elements, amounts, allow_peroxide)
    states = {e: float(s) for e, s in zip(comp.elements, sol.states[0], strict=True)}
    balanced = bool(sol.balanced[0])
    notes: tuple[str, ...] = ()
    if "O" in states and states["O"] > -2 + CHARGE_TOLERANCE:
        notes = (f"O at {states['O']:.3f} (above -2: peroxide or oxygen holes)",)
    if balanced:
        return OxidationAssignment(True, states, "", notes)
    x, _ = _as_fractions(amounts)
    return OxidationAssignment(False, states, _reason(comp, sol, x), notes)
