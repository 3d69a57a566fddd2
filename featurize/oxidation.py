"""Fast, deterministic charge-balance assignment for fractional, mixed-valence compositions.

Model (documented, table-driven, vectorised over a batch). Limits are listed at the end.

* Every element has a CATION entry ``(lo, hi, preferred)`` (positive states; from pymatgen's
  ``common_oxidation_states`` and ``icsd_oxidation_states`` with battery-relevant overrides in
  ``_CATION_OVERRIDES``) and possibly an ANION entry ``(lo, hi)`` (F/Cl/Br/I -1, O -2 (-1 as peroxide
  only on request), N -3, S/Se/Te -2..-1 (-1: the S2^2- of polysulfides), P/As/Sb -3, C -4, H -1).
* Roles, tried in this order; the first configuration that balances wins (else the first one's closest
  assignment is reported):
  A. "Hard" anions F, Cl, Br, I, O, N are anions whenever present. The "soft" anion formers (S, Se, Te,
     P, As, Sb, C, H) are polyanion centres (cations: sulfate S +6, phosphate P +5, carbonate C +4,
     hydroxide H +1) when O or F is present; otherwise the soft anions are every chalcogen present
     (Na3PS3Se: S and Se -2) or, without a chalcogen, the most electronegative soft former (Na3P,
     NaBH4: H -1) and the other soft formers are cations (Na3PS4: P +5).
  B. The same soft anions even with O/F present (oxysulfides such as Na3PS3O).
  C. No soft anion: every soft former is a cation (amides NaNH2: H +1; cyanides NaCN: C +2; Sb/Bi in
     halide double perovskites Cs2NaSbCl6: Sb +3).
* Neutrality: a composition is balanced iff ``sum x_i lo_i <= t`` and ``sum x_i hi_i >= -t`` (x =
  atomic fractions) with the near-neutral tolerance ``t = max(CHARGE_TOLERANCE, NEAR_NEUTRAL_RELATIVE *
  anion charge)``: a net charge within 0.5% of the anion charge (Na3.01Zr2Si2PO12: +0.01 on 24) is the
  rounding of a reported composition, balanced with its normal states, and the residual is reported
  (``OxidationAssignment.net_charge``, per formula unit). Beyond it the composition is off neutral and
  the reason says by how much.
* The assignment starts every element at its preferred state and moves the charge deficit onto
  variable-valence elements, each up to its bound, in the order of their redox couples (cumulative sums
  over the priority-sorted columns, so the batch path is pure NumPy):
  - more positive charge needed (Na-poor, charged cathodes): ``RAISE_ORDER``, the couples that oxidise
    first in sodium layered oxides: V3+/4+, Ti3+/4+, Mn3+/4+, Ce3+/4+, Ru4+/5+, then Ni2+/3+/4+, Cu2+/3+,
    Co3+/4+, Cr3+/4+ and Fe3+/4+ last (Fe4+ is the hardest to reach: NaFe0.5Ni0.5O2 is Fe3+/Ni3+);
    then the other cations by Z, then the polyanion centres, then the anions (S to -1, O to -1 only
    with ``allow_peroxide``);
  - less positive charge needed: ``LOWER_ORDER`` (Mn4+/3+ first: NaFe0.5Mn0.5O2 is Fe3+/Mn3+), other
    cations by Z, polyanion centres last (carbonate C stays +4 while a metal can be reduced).
  So NaFe0.5Mn0.5O2 gives Fe +3 / Mn +3 and NaNi0.5Mn0.5O2 gives Ni +2 / Mn +4.
* High states as discrete species: Mn +5/+6/+7, Fe +6, Ru +6..+8, Os +8 exist as oxo-anions (MnO4-,
  FeO4 2-, RuO4) but not as mixed valence in a battery oxide. When nothing else balances, one such
  element may take one of these states if that makes the composition exactly neutral with every other
  element at its bound (NaMnO4: Mn +7; Na3MnO4: Mn +5), never a fraction (Na0.6Li0.2Mn0.75Mg0.05O2,
  which needs Mn +4.13, stays unbalanced).
* Hydroborates: with H as hydride, B may go below +3 (cluster anions: Na2B12H12 is B +0.83, NaB3H8
  B +2.33; NaBH4 stays B +3).
* Oxygen above -2 (peroxide O2^2-, or oxygen holes in charged O-redox cathodes) only when asked
  (``allow_peroxide=True``, the screening default for the Na2O2-MCly family) and only after every
  cation is at its maximum: Na2O2-HfCl4 = Na2HfO2Cl4 is +2 short with O -2 and exactly neutral with the
  O -1 its Na2O2 reactant carries. The assignment records the peroxide use in ``notes``.

Limits (come out unbalanced or averaged, by design): perchlorates/iodates/nitrates (halogen or N as a
cation), thiosulfate-like mixed S roles, intermetallics and Zintl phases (no anion), and mixed-valence
averages are per element (Fe3O4 is Fe +2.67).

Absent elements get NaN states in the batch output (they have no oxidation state); unbalanced rows get
the closest assignment (every variable element at its bound) and ``balanced=False``.

Tried and not adopted: ordering the redox steps by pymatgen's ICSD occurrence counts (``icsd_bv.yaml``):
those statistics mix all chemistries, so Fe2+ (silicates, halides) makes Fe the first to reduce and
NaFe0.5Mn0.5O2 came out Fe2+/Mn4+, and Mn7+ is as frequent as Mn5+/6+ combined, so Mn would mix +4/+7.
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
    "DISCRETE_HIGH_STATES",
    "HARD_ANIONS",
    "LOWER_ORDER",
    "NEAR_NEUTRAL_RELATIVE",
    "RAISE_ORDER",
    "SOFT_ANIONS",
    "CationStates",
    "OxidationAssignment",
    "assign_oxidation_states",
    "cation_states",
    "charge_balance_batch",
]

#: Net charge per atom below which a composition counts as exactly neutral (amounts are rounded to 1e-8).
CHARGE_TOLERANCE = 1e-6
#: A net charge up to this fraction of the anion charge is the rounding of a reported composition:
#: balanced with the normal states (the residual is reported).
NEAR_NEUTRAL_RELATIVE = 0.005
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

#: Anion states (lo, hi). O has a range only with ``allow_peroxide``; S/Se/Te up to -1 (S2^2-, Se2^2-).
ANION_STATES: MappingProxyType[str, tuple[float, float]] = MappingProxyType(
    {
        "F": (-1, -1), "Cl": (-1, -1), "Br": (-1, -1), "I": (-1, -1),
        "O": (-2, -1), "N": (-3, -3),
        "S": (-2, -1), "Se": (-2, -1), "Te": (-2, -1),
        "P": (-3, -3), "As": (-3, -3), "Sb": (-3, -3), "C": (-4, -4), "H": (-1, -1),
    }
)  # fmt: skip
HARD_ANIONS = frozenset({"F", "Cl", "Br", "I", "O", "N"})
SOFT_ANIONS = frozenset(ANION_STATES) - HARD_ANIONS
CHALCOGEN_ANIONS = frozenset({"S", "Se", "Te"})
#: Soft anion formers become polyanion centres (cations) next to these.
_OXO = ("O", "F")
#: States that exist only as discrete oxo-anion species (MnO4-, FeO4 2-, RuO4), never as mixed valence.
DISCRETE_HIGH_STATES: MappingProxyType[str, tuple[float, ...]] = MappingProxyType(
    {"Mn": (5.0, 6.0, 7.0), "Fe": (6.0,), "Ru": (6.0, 7.0, 8.0), "Os": (8.0,)}
)

#: Lowest B state next to hydride H (B-H cluster anions such as B12H12 2-).
_BORANE_B_LO = 0.0

#: Oxidised first -> last (couples of sodium layered oxides; see the module docstring).
RAISE_ORDER: tuple[str, ...] = ("V", "Ti", "Mn", "Ce", "Ru", "Ni", "Cu", "Co", "Cr", "Fe", "Mo", "Nb", "W")
#: Reduced first -> last.
LOWER_ORDER: tuple[str, ...] = ("Mn", "Co", "Ni", "Cu", "Fe", "V", "Cr", "Ti", "Ru", "Mo", "Nb", "W", "Ce")
#: Polyanion centres and soft anion formers move after every other cation, in this order.
_CENTRE_ORDER: tuple[str, ...] = ("Sb", "Bi", "As", "Te", "Se", "S", "N", "P", "C", "H")


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
    """Position of ``sym`` in a redox order: the listed couples, then other cations by Z, then the
    polyanion centres / soft anion formers (``_CENTRE_ORDER``)."""
    if sym in order:
        return float(order.index(sym))
    if sym in _CENTRE_ORDER:
        return float(len(order) + len(ELEMENTS) + 1 + _CENTRE_ORDER.index(sym))
    return float(len(order) + atomic_number(sym))


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
    chalcogen: NDArray[np.bool_]
    oxo: NDArray[np.bool_]
    oxygen: NDArray[np.bool_]
    en: NDArray[np.float64]
    raise_order: NDArray[np.intp]
    lower_order: NDArray[np.intp]
    discrete: tuple[tuple[int, tuple[float, ...]], ...]
    boron: int
    hydrogen: int


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
    n_z = 2 * (len(ELEMENTS) + 1)
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
        chalcogen=np.array([s in CHALCOGEN_ANIONS for s in elements]),
        oxo=np.array([s in _OXO for s in elements]),
        oxygen=np.array([s == "O" for s in elements]),
        en=en,
        # Hard anions (always anions) move after every cation and centre: only O has room, raised last.
        raise_order=np.argsort(
            [_rank(RAISE_ORDER, s) + (2.0 * n_z if s in HARD_ANIONS else 0.0) for s in elements],
            kind="stable",
        ),
        lower_order=np.argsort([_rank(LOWER_ORDER, s) for s in elements], kind="stable"),
        boron=elements.index("B") if "B" in elements else -1,
        hydrogen=elements.index("H") if "H" in elements else -1,
        discrete=tuple(
            (elements.index(s), states) for s, states in DISCRETE_HIGH_STATES.items() if s in elements
        ),
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


@dataclass
class _Solution:
    """Per-row result of one role configuration (arrays over the rows it was solved for)."""

    states: NDArray[np.float64]
    balanced: NDArray[np.bool_]
    anion: NDArray[np.bool_]
    q_lo: NDArray[np.float64]
    q_hi: NDArray[np.float64]
    lo: NDArray[np.float64]
    hi: NDArray[np.float64]
    net: NDArray[np.float64]  # net charge per atom of ``states``
    tol: NDArray[np.float64]  # the row's near-neutral tolerance per atom

    def take(self, rows: NDArray[np.intp], other: _Solution, pick: NDArray[np.bool_]) -> None:
        """Overwrite ``rows`` (indices into self) with ``other``'s rows where ``pick``."""
        dst, src = rows[pick], np.flatnonzero(pick)
        for name in ("states", "balanced", "anion", "q_lo", "q_hi", "lo", "hi", "net", "tol"):
            getattr(self, name)[dst] = getattr(other, name)[src]


#: Role configurations (module docstring): A polyanion-aware, B soft anions despite O/F, C no soft anion.
_ROLES_A, _ROLES_B, _ROLES_C = 0, 1, 2


def _soft_anions(
    cols: _Columns, x: NDArray[np.float64], present: NDArray[np.bool_], roles: int
) -> NDArray[np.bool_]:
    n_rows = x.shape[0]
    if roles == _ROLES_C or not cols.soft.any():
        return np.zeros_like(present)
    en = np.where(present & cols.soft, cols.en, -np.inf)
    best = np.argmax(en, axis=1)
    has_soft = np.isfinite(en[np.arange(n_rows), best])
    one = np.zeros_like(present)
    one[np.arange(n_rows), best] = has_soft
    chalc = present & cols.chalcogen
    soft_anion = np.where(np.any(chalc, axis=1)[:, None], chalc, one)
    if roles == _ROLES_A and cols.oxo.any():
        soft_anion &= ~np.any(present & cols.oxo, axis=1)[:, None]
    return soft_anion


def _solve(cols: _Columns, x: NDArray[np.float64], roles: int, allow_peroxide: bool) -> _Solution:
    present = x > 0
    anion = present & (cols.hard | _soft_anions(cols, x, present, roles))
    cation = present & ~anion

    a_hi = cols.a_hi if allow_peroxide else np.where(cols.oxygen, cols.a_lo, cols.a_hi)
    # absent elements carry x = 0, so their lo/hi/pref never count
    lo = np.where(anion, cols.a_lo, cols.c_lo)
    if cols.boron >= 0 and cols.hydrogen >= 0:  # B-H cluster anions (closo-borates): B below +3
        hydride = anion[:, cols.hydrogen]
        lo[hydride, cols.boron] = _BORANE_B_LO
    hi = np.where(anion, a_hi, cols.c_hi)
    pref = np.where(anion, cols.a_lo, cols.c_pref)
    impossible = ~np.any(anion, axis=1)
    if not cols.has_cation.all():
        impossible |= np.any(cation & ~cols.has_cation, axis=1)

    q_lo = np.sum(x * lo, axis=1)
    q_hi = np.sum(x * hi, axis=1)
    q_pref = np.sum(x * pref, axis=1)
    tol = np.maximum(CHARGE_TOLERANCE, NEAR_NEUTRAL_RELATIVE * -np.sum(np.where(anion, x * lo, 0.0), axis=1))
    balanced = (q_lo <= tol) & (q_hi >= -tol) & ~impossible

    need_up = np.maximum(-q_pref, 0.0)
    need_down = np.maximum(q_pref, 0.0)
    up = _fill(need_up, x * (hi - pref), cols.raise_order)
    down = _fill(need_down, x * (pref - lo), cols.lower_order)
    net = q_pref + up.sum(axis=1) - down.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        states = np.where(present, pref + (up - down) / x, np.nan)
    return _Solution(states, balanced, anion, q_lo, q_hi, lo, hi, net, tol)


def _as_fractions(amounts: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    a = np.asarray(amounts, dtype=float)
    valid = np.all(np.isfinite(a) & (a >= 0), axis=1)
    a = np.where(valid[:, None], a, 0.0)
    total = a.sum(axis=1)
    valid &= total > 0
    x = a / np.where(valid, total, 1.0)[:, None]
    x[x < 1e-12] = 0.0
    return x, valid


def _discrete_high_states(
    cols: _Columns, x: NDArray[np.float64], sol: _Solution, rows: NDArray[np.intp]
) -> None:
    """For unbalanced ``rows`` short of positive charge: one element of ``DISCRETE_HIGH_STATES`` takes
    such a state if that makes the row exactly neutral with everything else at its bound (elements tried
    in the table's order, so the column order does not matter)."""
    for j, states in cols.discrete:
        if rows.size == 0:
            return
        xj = x[rows, j]
        ok = (xj > 0) & ~sol.anion[rows, j] & (sol.net[rows] < 0)
        if not ok.any():
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            want = sol.states[rows, j] - sol.net[rows] / xj
        for state in states:
            hit = ok & (np.abs(want - state) * xj <= CHARGE_TOLERANCE)  # exactly, not near, neutral
            if hit.any():
                r = rows[hit]
                sol.net[r] += (state - sol.states[r, j]) * x[r, j]
                sol.states[r, j] = state
                sol.balanced[r] = True
                ok &= ~hit
        rows = rows[~sol.balanced[rows]]


def _batch(
    elements: tuple[str, ...], amounts: NDArray[np.float64], allow_peroxide: bool
) -> tuple[_Solution, NDArray[np.bool_]]:
    cols = _columns(elements)
    x, valid = _as_fractions(amounts)
    sol = _solve(cols, x, _ROLES_A, allow_peroxide)
    if cols.soft.any():
        for roles in (_ROLES_B, _ROLES_C):
            todo = np.flatnonzero(~sol.balanced & valid & np.any((x > 0) & cols.soft, axis=1))
            if todo.size == 0:
                break
            other = _solve(cols, x[todo], roles, allow_peroxide)
            sol.take(todo, other, other.balanced)
    if cols.discrete:
        _discrete_high_states(cols, x, sol, np.flatnonzero(~sol.balanced & valid))
    return sol, valid


def charge_balance_batch(
    elements: Sequence[str], amounts: NDArray[np.float64], *, allow_peroxide: bool = False
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Vectorised charge balance: amounts (n, k) over ``elements`` -> (states (n, k), balanced (n,)).

    Rows are scaled to fractions, so any normalisation works. States are NaN for absent elements and
    for invalid rows (a negative or non-finite amount, or all zeros), which are also not balanced.
    ``allow_peroxide``: O may rise to -1 (only for inputs written from a peroxide such as Na2O2).
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
    """Average oxidation state per element. ``net_charge``: the assignment's net charge per formula unit
    (``Composition.amounts``), 0 when exactly neutral, small but non-zero when balanced within the
    near-neutral tolerance, and how far off neutral an unbalanced composition is at its closest."""

    balanced: bool
    states: dict[str, float]
    reason: str
    notes: tuple[str, ...] = ()
    net_charge: float = 0.0


def _fmt(v: float) -> str:
    return f"{v:+.0f}" if float(v).is_integer() else f"{v:+.2f}"


def _reason(comp: Composition, sol: _Solution, x: NDArray[np.float64], net: float) -> str:
    els = comp.elements
    anion = sol.anion[0]
    cols = _columns(els)
    head = f'"{comp.label}": cannot be charge balanced'
    no_cation = [e for j, e in enumerate(els) if not anion[j] and not cols.has_cation[j]]
    if no_cation:
        return f"{head}: {', '.join(no_cation)} takes no positive oxidation state"
    if not anion.any():
        return f"{head}: no anion-forming element (intermetallic or metal)"
    off = f"off neutral by {net:+.4g} per formula unit at the closest assignment"
    q_lo, q_hi = float(sol.q_lo[0]), float(sol.q_hi[0])
    lo, hi = sol.lo[0], sol.hi[0]
    var = [j for j in range(len(els)) if not anion[j] and hi[j] > lo[j]]
    if q_hi < 0:  # too little positive charge even at the highest states
        short = -q_hi
        if len(var) == 1:
            j = var[0]
            need = hi[j] + short / x[0, j]
            return f"{head}: needs {els[j]} above {_fmt(hi[j])} (would be {_fmt(need)}); {off}"
        names = ", ".join(f"{els[j]} {_fmt(hi[j])}" for j in var) or "all cations fixed"
        return f"{head}: too little positive charge at the highest states ({names}); {off}"
    excess = q_lo
    if len(var) == 1:
        j = var[0]
        need = lo[j] - excess / x[0, j]
        return f"{head}: needs {els[j]} below {_fmt(lo[j])} (would be {_fmt(need)}); {off}"
    names = ", ".join(f"{els[j]} {_fmt(lo[j])}" for j in var) or "all cations fixed"
    return f"{head}: too much positive charge at the lowest states ({names}); {off}"


def assign_oxidation_states(comp: Composition, *, allow_peroxide: bool = False) -> OxidationAssignment:
    """Average oxidation state per element of one composition (same algorithm as the batch).
    ``allow_peroxide``: let O rise above -2 (inputs written from Na2O2 or charged O-redox cathodes)."""
    amounts = np.asarray(comp.amounts, dtype=float)[None, :]
    sol, _valid = _batch(comp.elements, amounts, allow_peroxide)
    states = {e: float(s) for e, s in zip(comp.elements, sol.states[0], strict=True)}
    balanced = bool(sol.balanced[0])
    net = float(sol.net[0]) * float(amounts.sum())
    if abs(net) < CHARGE_TOLERANCE:
        net = 0.0
    notes: list[str] = []
    if "O" in states and states["O"] > -2 + CHARGE_TOLERANCE:
        notes.append(f"O at {states['O']:.3f} (above -2: peroxide or oxygen holes)")
    for el in CHALCOGEN_ANIONS & set(states):
        if -2 + CHARGE_TOLERANCE < states[el] < 0:
            notes.append(
                f"{el} at {states[el]:.3f} (above -2: poly{'sulfide' if el == 'S' else 'chalcogenide'})"
            )
    for el, highs in DISCRETE_HIGH_STATES.items():
        if el in states and states[el] in highs:
            notes.append(f"{el} {_fmt(states[el])} (a discrete oxo-anion state)")
    if balanced:
        if net:
            notes.append(f"net charge {net:+.4g} per formula unit, within the near-neutral tolerance")
        return OxidationAssignment(True, states, "", tuple(notes), net)
    x, _ = _as_fractions(amounts)
    return OxidationAssignment(False, states, _reason(comp, sol, x, net), tuple(notes), net)
