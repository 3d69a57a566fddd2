"""Applicability domain: is a query like the rows the model was trained on?

Three independent tests, each with a reason a user can act on (reasons of one row join with "; "):
- elements: an element that never occurs in the target's training formulas is out of domain, whatever the
  features say ("elements not in the training data: Cl, Hf").
- chemistry class: a composition's class is (mobile/working ion, anion set) for each of the target's ions
  it contains (``domain_ions``: Na and Li for conductivity, Na for retention, the alkali working ions for
  voltage), the anions being the elements that take a negative state in featurize.oxidation's charge
  balance (O, Cl, S in a thiophosphate, ...; P in a phosphate or S in a sulfate are cations there, so
  polyanion centres do not count). A class no training row has is out of domain ("no Na compound with
  anions {Cl, O} in the training data (seen for Na: {O} (812 rows), ...)"): a Na oxychloride is new
  chemistry even when Cl, Hf and Zr all occur in Li chlorides and its features sit near some oxide.
- feature space: the mean Euclidean distance from the query to its ``k`` nearest training rows, measured in
  the model's own feature space (the pipeline's transformed features, standardised here per feature on the
  training rows so no feature dominates by its unit). The threshold is the ``quantile`` of the same distance
  for held-out rows of grouped CV (each measured to its own training folds), so "too far" means farther
  than ``quantile`` of genuinely new groups were, in the model's own cross-validation.
- polyanion frameworks (conductivity only, ``POLYANION_TARGETS``): the class also says whether a polyanion
  centre (P, Si, B, S, Ge, As, Se, Sb as a cation) is present, so beta-alumina NaAl11O17 ({O}, no
  polyanion) is not "a Na oxide like the NASICONs" ({O} + polyanion): measured, it was the in-domain
  prediction 3.4 decades off, its nearest Na rows being Na-Ti-Al phosphates.
- same-class support (conductivity only, instead of same-ion support): the nearest training row of the
  query's own class must be within the threshold: a Na aluminate is not supported by Na phosphates nor a
  Na chloride by Na oxides.
- carrier content (conductivity only, with same-class support): the query's mobile-ion atoms per anion
  atom (Na3YCl6: 3/6 = 0.5) must lie within the range its class's training rows span, widened on the log
  scale by a tolerance learned from grouped CV (``select_content_tolerance``): the held-out rows whose
  content lay outside their training folds' class range, sorted by how far outside, are admitted up to
  the second one more than ``DEFECT_ERROR`` decades off (``FORGIVEN_DEFECTS``: one is forgiven).
  Conductivity turns on the carrier and vacancy concentration, and a forest cannot extrapolate along
  it: measured, Na3YCl6 (Na-rich cryolite-type, 1e-8 S/cm) was predicted like the Na-poor fast
  chlorides (NaTaCl6 1/6, Na2HfCl6 1/3 per Cl) that were its nearest class rows, 4.1 decades off and in
  domain; a composition a few per cent beyond its class's range is predicted like the range's edge,
  which the held-out rows show is safe up to ~10%.
- same-ion support (with the chemistry-class rule): a query containing a target ion (Na) must also be within
  the same threshold of the ``k`` nearest training rows containing that ion. The class rule alone lets a
  Na compound through when its anion set occurs in any Na row (beta-alumina NaAl11O17 "is" a Na oxide like
  the NASICONs) while the nearest evidence is Li aluminates: measured, such rows were the in-domain
  predictions 5-6 decades off. Li analogues do not count as support because they were measured not to
  carry Na conductivities across (see the Li-analogue study in models.studies).

Pure: arrays in, arrays out. ``UncertainRegressor`` (models/uncertain.py) produces the held-out distances.
"""

from __future__ import annotations

import math
import weakref
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.neighbors import NearestNeighbors
from sklearn.utils.validation import check_is_fitted

from featurize.composition import Composition
from featurize.oxidation import charge_balance_batch
from models import knn as knn_module
from models.knn import SubsetKnn
from models.targets import TargetName

#: One (ion, anion elements) pair of a composition's chemistry class; ion None: it contains none of the
#: target's ions.
ClassPair = tuple[str | None, frozenset[str]]
#: A composition's chemistry class: one pair per target ion it contains (at least one pair).
ChemClass = frozenset[ClassPair]

#: The ions whose (ion, anions) class the domain checks, per target: the mobile ions of the conductivity
#: data, Na for retention, the alkali working ions for voltage (Mg, Ca, Zn, Al, Y are left out: they are
#: common dopants of Na cathodes, and a dopant is not the ion the voltage is measured against).
DOMAIN_IONS: dict[TargetName, tuple[str, ...]] = {
    TargetName.IONIC_CONDUCTIVITY: ("Na", "Li"),
    TargetName.CAPACITY_RETENTION: ("Na",),
    TargetName.AVERAGE_VOLTAGE: ("Li", "Na", "K", "Rb", "Cs"),
}


#: Elements that, in a cationic state, centre a polyanion / network former (PO4, SiO4, BO3, SO4, PS4, SbS4,
#: GeS4, AsS4, SeO4, ...). With ``polyanions=True`` a class also says whether one is present, so a Na
#: aluminate (beta-alumina NaAl11O17: no polyanion) is not the same chemistry as a Na phosphate/silicate
#: NASICON although both have the anion set {O}. Which centre it is does not matter (Na3PS4, Na4SiS4 and
#: Na3SbS4 are one class: thio-polyanion sulfides).
POLYANION_CENTRES = frozenset({"B", "Si", "P", "S", "Ge", "As", "Se", "Sb"})
#: The marker added to a class's anion set when a polyanion centre is present.
POLYANION = "polyanion"
#: Targets whose chemistry classes tell polyanion frameworks apart and whose support rule asks for rows of
#: the query's own class (conductivity: the framework decides the conduction path; the cathode targets
#: keep the plain anion classes and the same-ion rule their models were fitted with).
POLYANION_TARGETS = frozenset({TargetName.IONIC_CONDUCTIVITY})
#: With class support, a query needs its nearest ``CLASS_K`` training row(s) of its own (ion, anions) class
#: within the domain threshold. Measured on the Na non-NASICON rows under grouped CV by source (CHANGELOG):
#: k = 1 keeps 57% of the rows in domain and takes beta-alumina out; 3 and 5 also take out well-predicted
#: halides (51%, 46%).
CLASS_K = 1
#: Targets whose feature-space distance counts a two-valued feature's mismatch (a phase category) as one
#: unit (``FeatureSpaceDistance(category_units=True)``). Measured on conductivity (CHANGELOG, issue 9):
#: the Na non-NASICON rows in domain 48.8% -> 57.6% over 5 fold seeds, worst in-domain error unchanged;
#: the cathode targets keep the distance their domains were measured with.
CATEGORY_UNIT_TARGETS = frozenset({TargetName.IONIC_CONDUCTIVITY})
#: Float noise (ion atoms per anion atom) forgiven at the edges of a class's content range.
CONTENT_TOLERANCE = 1e-9
#: An in-domain prediction this many decades off is a defect (the issue's line): the carrier-content
#: tolerance admits held-out content excesses up to the first held-out row beyond it.
DEFECT_ERROR = 2.5
#: Held-out defects forgiven by ``select_content_tolerance`` before one stops the admitted excess range.
FORGIVEN_DEFECTS = 1


def content_excess(
    classes: Sequence[ChemClass],
    contents: np.ndarray,
    ranges: dict[ClassPair, tuple[float, float]],
    ions: Sequence[str],
) -> np.ndarray:
    """Per row, how far (natural log of the ratio) its ion content lies outside its class's training range
    (``content_ranges``): 0 inside, log(v / hi) above, log(lo / v) below; the largest over the row's
    (ion, anions) pairs; NaN when no pair of the row has a range or its content is unknown."""
    column = {ion: j for j, ion in enumerate(ions)}
    out = np.full(len(classes), np.nan)
    for i, cls in enumerate(classes):
        for pair in cls:
            if pair not in ranges or pair[0] not in column:
                continue
            value = float(contents[i, column[pair[0]]])
            if not np.isfinite(value) or value <= 0:
                continue
            lo, hi = ranges[pair]
            excess = max(np.log(value / hi), np.log(lo / value), 0.0)
            out[i] = excess if not np.isfinite(out[i]) else max(out[i], excess)
    return out


def select_content_tolerance(
    excess: Any, errors: Any, max_error: float = DEFECT_ERROR, forgiven: int | None = None
) -> float:
    """The carrier-content tolerance (log ratio) learned from held-out rows: their content ``excess``
    beyond their training folds' class range and their absolute ``errors`` (decades). Rows outside the
    range, by increasing excess, are admitted up to (not including) the first defect (more than
    ``max_error`` off) after the ``forgiven`` first ones (default ``FORGIVEN_DEFECTS``); the tolerance is
    the largest excess admitted (0: no row before that defect, or none lies outside). Inside rows (excess
    0) and rows without a range (NaN) carry no evidence either way.

    Why defects are forgiven: one held-out row can be off for reasons of its own (inside their class's
    range, 10% of the held-out rows are defects), and with the first defect deciding, one such row at a
    1% excess (Li1.65Mn0.65In0.35Cl4, 3.1 decades off) cut the served tolerance from ~10% to 0.9%."""
    forgiven = FORGIVEN_DEFECTS if forgiven is None else int(forgiven)
    if forgiven < 0:
        raise ValueError(f"forgiven must be >= 0, got {forgiven!r}")
    ex = np.asarray(excess, dtype=float)
    err = np.asarray(errors, dtype=float)
    if ex.shape != err.shape or ex.ndim != 1:
        raise ValueError(f"excess and errors must be 1-D of one length, got {ex.shape} and {err.shape}")
    outside = np.isfinite(ex) & (ex > CONTENT_TOLERANCE) & np.isfinite(err)
    order = np.argsort(ex[outside], kind="stable")
    ex_sorted, err_sorted = ex[outside][order], err[outside][order]
    bad = np.flatnonzero(err_sorted > max_error)
    if bad.size > forgiven:
        stop = ex_sorted[bad[forgiven]]
        admitted = ex_sorted[ex_sorted < stop]  # ties with the deciding defect are not admitted
    else:
        admitted = ex_sorted
    return float(admitted.max()) if admitted.size else 0.0


def content_ranges(
    classes: Sequence[ChemClass], contents: np.ndarray, ions: Sequence[str]
) -> dict[ClassPair, tuple[float, float]]:
    """(min, max) of the ion's content over the training rows of each (ion, anions) class."""
    if contents.shape != (len(classes), len(ions)):
        raise ValueError(
            f"training_ion_contents must have shape {(len(classes), len(ions))}, got {contents.shape}"
        )
    column = {ion: j for j, ion in enumerate(ions)}
    values: dict[ClassPair, list[float]] = {}
    for cls, row in zip(classes, contents, strict=True):
        for ion, anions in cls:
            if ion in column and np.isfinite(row[column[ion]]):
                values.setdefault((ion, anions), []).append(float(row[column[ion]]))
    return {pair: (min(v), max(v)) for pair, v in values.items()}


def domain_polyanions(target: TargetName | str) -> bool:
    """Does ``target``'s chemistry-class rule tell polyanion frameworks apart (POLYANION_TARGETS)?"""
    return TargetName(target) in POLYANION_TARGETS


def domain_category_units(target: TargetName | str) -> bool:
    """Does ``target``'s feature-space distance count a category mismatch as one unit
    (CATEGORY_UNIT_TARGETS)?"""
    return TargetName(target) in CATEGORY_UNIT_TARGETS


def domain_ions(target: TargetName | str) -> tuple[str, ...]:
    """The ions of ``target``'s chemistry-class rule."""
    return DOMAIN_IONS[TargetName(target)]


def anion_sets(comps: Sequence[Composition], polyanions: bool = False) -> list[frozenset[str]]:
    """Anion elements of each composition: those with a negative state in featurize.oxidation's assignment
    (with ``polyanions``, plus the marker ``POLYANION`` when an element of POLYANION_CENTRES is a cation).

    The strict assignment (``allow_peroxide=False``) is used: it gives the same roles as the default one
    except where a soft anion former next to O/F only "balances" as an anion by also pushing O above -2
    (a mis-transcribed phosphate such as Li1.05Ti1.95Al0.05PO4 would otherwise count P as a phosphide
    anion); real oxysulfides (Na3PS3O) keep S as an anion, oxychlorides keep O and Cl. Vectorised: one
    ``charge_balance_batch`` call over the union of the elements (absent elements do not take part).
    """
    if not comps:
        return []
    columns = sorted({e for c in comps for e in c.elements}, key=_element_sort_key)
    index = {e: j for j, e in enumerate(columns)}
    amounts = np.zeros((len(comps), len(columns)))
    for i, comp in enumerate(comps):
        amounts[i, [index[e] for e in comp.elements]] = comp.amounts
    states, _balanced = charge_balance_batch(columns, amounts, allow_peroxide=False)
    # NaN (an absent element) compares False both ways: neither an anion nor a cation centre
    negative = states < 0.0
    centred: np.ndarray = np.zeros(len(comps), dtype=bool)
    if polyanions:
        centre_cols = [j for j, e in enumerate(columns) if e in POLYANION_CENTRES]
        if centre_cols:
            centred = np.asarray((states[:, centre_cols] > 0.0).any(axis=1), dtype=bool)
    if len(comps) == 1:  # one query (the served one-item predict): no table of distinct rows to build
        found = {columns[j] for j in np.flatnonzero(negative[0]).tolist()}
        return [frozenset(found | {POLYANION} if centred[0] else found)]
    cache: dict[bytes, frozenset[str]] = {}
    out: list[frozenset[str]] = []
    for row, centre in zip(np.packbits(negative, axis=1), centred, strict=True):
        key = row.tobytes() + (b"p" if centre else b"")
        anions = cache.get(key)
        if anions is None:
            mask = np.unpackbits(row, count=len(columns)).astype(bool)
            found = {e for e, neg in zip(columns, mask, strict=True) if neg}
            anions = cache[key] = frozenset(found | {POLYANION} if centre else found)
        out.append(anions)
    return out


def chemistry_classes(
    comps: Sequence[Composition],
    ions: Sequence[str],
    polyanions: bool = False,
    anions: Sequence[frozenset[str]] | None = None,
) -> list[ChemClass]:
    """Chemistry class of each composition: {(ion, anions)} for each of ``ions`` it contains, or
    {(None, anions)} when it contains none of them (``polyanions``: see ``anion_sets``). ``anions``:
    ``anion_sets(comps, polyanions)`` when the caller already has it (one charge-balance pass, not two)."""
    ion_set = frozenset(ions)
    cache: dict[tuple[tuple[str, ...], frozenset[str]], ChemClass] = {}
    out: list[ChemClass] = []
    sets = anion_sets(comps, polyanions) if anions is None else anions
    for comp, found in zip(comps, sets, strict=True):
        key = (comp.elements, found)
        cls = cache.get(key)
        if cls is None:
            present = [e for e in comp.elements if e in ion_set]
            cls = frozenset((ion, found) for ion in present) if present else frozenset({(None, found)})
            cache[key] = cls
        out.append(cls)
    return out


def ion_contents(
    comps: Sequence[Composition], ions: Sequence[str], anions: Sequence[frozenset[str]] | None = None
) -> np.ndarray:
    """Atoms of each of ``ions`` per anion atom (anions as in ``anion_sets``), shape (n, len(ions)); NaN
    where the composition lacks the ion or has no anion (Na3YCl6 -> 0.5 for Na, NaTaCl6 -> 1/6).
    ``anions``: ``anion_sets(comps)`` (or ``plain_anions`` of the polyanion sets) when already computed."""
    out = np.full((len(comps), len(ions)), np.nan)
    sets = anion_sets(comps) if anions is None else anions
    for i, (comp, found) in enumerate(zip(comps, sets, strict=True)):
        amounts = dict(zip(comp.elements, comp.amounts, strict=True))
        total = sum(amounts[e] for e in found if e in amounts)
        if total <= 0:
            continue
        for j, ion in enumerate(ions):
            if ion in amounts:
                out[i, j] = amounts[ion] / total
    return out


def plain_anions(sets: Sequence[frozenset[str]]) -> list[frozenset[str]]:
    """``anion_sets(comps)`` from ``anion_sets(comps, polyanions=True)``: the anion elements are the same,
    the polyanion variant only adds the ``POLYANION`` marker."""
    return [s - {POLYANION} if POLYANION in s else s for s in sets]


def _anions_text(anions: frozenset[str]) -> str:
    elements = sorted(anions - {POLYANION})
    text = "{" + ", ".join(elements) + "}" if elements else "no anion"
    return f"{text} + polyanion" if POLYANION in anions else text


def _pair_sort_key(pair: ClassPair) -> tuple[str, tuple[str, ...]]:
    return (pair[0] or "", tuple(sorted(pair[1])))


class FeatureSpaceDistance(BaseEstimator):
    """Mean distance to the ``k`` nearest reference rows in per-feature standardised space.

    ``category_units``: a feature with two values in the reference rows (a one-hot category such as the
    phase, a flag) is scaled by the gap between them, so a mismatch counts one unit: by its standard
    deviation a category of 6 rows in 854 (amorphous) alone put a row 12 units away, more than the whole
    domain threshold (``CATEGORY_UNIT_TARGETS``)."""

    def __init__(self, k: int = 5, category_units: bool = False) -> None:
        self.k = k
        self.category_units = category_units

    def fit(self, Z: Any, y: Any = None) -> FeatureSpaceDistance:
        Z = _finite_2d(Z, "reference features")
        if not isinstance(self.k, int | np.integer) or self.k < 1:
            raise ValueError(f"k must be a positive integer, got {self.k!r}")
        self.center_ = Z.mean(axis=0)
        scale = Z.std(axis=0)
        scale[~(scale > 1e-12)] = 1.0  # a feature constant in training: distances in its raw units
        if self.category_units:
            lo, hi = Z.min(axis=0), Z.max(axis=0)
            two_valued = (hi > lo) & (np.equal(Z, lo) | np.equal(Z, hi)).all(axis=0)
            scale[two_valued] = (hi - lo)[two_valued]
        self.scale_ = scale
        self.k_ = int(min(self.k, len(Z)))
        self.nn_ = NearestNeighbors(n_neighbors=self.k_).fit((Z - self.center_) / self.scale_)
        self.n_features_in_ = Z.shape[1]
        return self

    def mean_knn_distance(self, Z: Any) -> np.ndarray:
        """Mean distance of each row to its k nearest reference rows (NaN for non-finite features)."""
        check_is_fitted(self, "nn_")
        Z = np.asarray(Z, dtype=float)
        if Z.ndim != 2 or Z.shape[1] != self.n_features_in_:
            raise ValueError(f"expected features of shape (n, {self.n_features_in_}), got {Z.shape}")
        out = np.full(len(Z), np.nan)
        ok = np.isfinite(Z).all(axis=1)
        if ok.any():
            dist, _ = self.nn_.kneighbors((Z[ok] - self.center_) / self.scale_)
            out[ok] = dist.mean(axis=1)
        return out


def _finite_2d(Z: Any, what: str) -> np.ndarray:
    array: np.ndarray = np.asarray(Z, dtype=float)
    if array.ndim != 2 or len(array) == 0:
        raise ValueError(f"{what} must be a non-empty 2-D array, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{what} contain NaN or infinite values (impute before the domain)")
    return array


def _element_sort_key(symbol: str) -> tuple[int, str]:
    from pymatgen.core.periodic_table import Element

    try:
        return (int(Element(symbol).Z), symbol)
    except ValueError:
        return (10**6, symbol)


#: Per fitted domain, its ``SubsetKnn`` (False: its neighbours do not allow one), built on first use and
#: kept outside the object so pickled models (MLflow artifacts, old and new) are unchanged.
_SHARED_KNN: weakref.WeakKeyDictionary[ApplicabilityDomain, SubsetKnn | bool] = weakref.WeakKeyDictionary()


class ApplicabilityDomain(BaseEstimator):
    """In-domain flag + reason per query row from its elements and its feature-space distance.

    Parameters
    ----------
    k : neighbours averaged in the distance.
    quantile : quantile of the held-out CV distances used as the threshold (0.95: 5% of new groups in CV
        would have been flagged).
    """

    #: Classes listed in a "seen for Na: ..." reason (most frequent first).
    _SEEN_SHOWN = 6

    def __init__(self, k: int = 5, quantile: float = 0.95, category_units: bool = False) -> None:
        self.k = k
        self.quantile = quantile
        self.category_units = category_units

    def fit(
        self,
        Z: Any,
        *,
        training_elements: Iterable[str],
        heldout_distances: Any,
        training_classes: Iterable[ChemClass] | None = None,
        ion_elements: Sequence[str] = (),
        class_support: bool = False,
        training_ion_contents: Any = None,
        content_tolerance: float = 0.0,
    ) -> ApplicabilityDomain:
        """Fit on the training rows' features ``Z``; the threshold comes from ``heldout_distances``.

        ``heldout_distances`` are ``FeatureSpaceDistance(k)`` distances of grouped-CV held-out rows to their
        own training folds (finite values are used; at least one is required). ``training_classes`` (one
        ``chemistry_classes`` value per training row, computed with ``ion_elements``) turns the
        chemistry-class rule on; None leaves it off. ``class_support``: the same-ion support must come from
        training rows of the query's own (ion, anions) class, not from any row with the ion.
        ``training_ion_contents`` (``ion_contents`` of the training rows with ``ion_elements``; only with
        ``class_support``) turns the carrier-content rule on: per (ion, anions) class, the range of the
        ion's atoms per anion atom over its training rows. ``content_tolerance`` (natural log of a ratio,
        >= 0; ``select_content_tolerance`` on grouped-CV held-out rows) widens each range to
        [lo / e^t, hi * e^t].
        """
        if not (np.isfinite(content_tolerance) and content_tolerance >= 0):
            raise ValueError(f"content_tolerance must be a finite number >= 0, got {content_tolerance!r}")
        if not 0.0 < self.quantile <= 1.0:
            raise ValueError(f"quantile must be in (0, 1], got {self.quantile!r}")
        d = np.asarray(heldout_distances, dtype=float)
        d = d[np.isfinite(d)]
        if d.size == 0:
            raise ValueError("heldout_distances has no finite value: cannot choose a domain threshold")
        self.distance_ = FeatureSpaceDistance(self.k, self.category_units).fit(Z)
        self.threshold_ = float(np.quantile(d, self.quantile))
        self.training_elements_ = frozenset(training_elements)
        self.ion_elements_ = tuple(ion_elements)
        self.class_counts_: dict[ClassPair, int] | None = None
        self.ion_neighbours_: dict[str, NearestNeighbors] = {}
        self.content_ranges_: dict[ClassPair, tuple[float, float]] | None = None
        if training_classes is not None:
            classes = list(training_classes)
            self.class_counts_ = dict(Counter(pair for cls in classes for pair in cls))
            scaled = self._standardise(np.asarray(Z, dtype=float))
            k = self.distance_.k_
            for ion in self.ion_elements_:
                rows = [i for i, cls in enumerate(classes) if any(p[0] == ion for p in cls)]
                if len(rows) >= k:  # same standardisation as the global distance: one threshold for both
                    self.ion_neighbours_[ion] = NearestNeighbors(n_neighbors=k).fit(scaled[rows])
            self.pair_neighbours_: dict[ClassPair, NearestNeighbors] | None = None
            if class_support:
                self.pair_neighbours_ = {}
                for pair in self.class_counts_:
                    if pair[0] not in self.ion_elements_:
                        continue
                    rows = [i for i, cls in enumerate(classes) if pair in cls]
                    # a class with fewer than CLASS_K rows: all of them
                    self.pair_neighbours_[pair] = NearestNeighbors(n_neighbors=min(CLASS_K, len(rows))).fit(
                        scaled[rows]
                    )
                if training_ion_contents is not None:
                    self.content_tolerance_ = float(content_tolerance)
                    self.content_ranges_ = content_ranges(
                        classes, np.asarray(training_ion_contents, dtype=float), self.ion_elements_
                    )
        return self

    def class_distances(self, Z: Any, classes: Sequence[ChemClass]) -> np.ndarray:
        """Per row: the smallest, over the row's (ion, anions) pairs, mean distance to the nearest training
        rows of that same pair (NaN where the class-support rule is off, or no pair was seen)."""
        refs: dict[ClassPair, NearestNeighbors] | None = getattr(self, "pair_neighbours_", None)
        Z = np.asarray(Z, dtype=float)
        out = np.full(len(Z), np.nan)
        if not refs:
            return out
        ok = np.isfinite(Z).all(axis=1)
        scaled = np.zeros_like(Z)
        scaled[ok] = self._standardise(Z[ok])
        by_pair: dict[ClassPair, list[int]] = {}
        for i, cls in enumerate(classes):
            if ok[i]:
                for pair in cls:
                    if pair in refs:
                        by_pair.setdefault(pair, []).append(i)
        for pair, rows in by_pair.items():
            dist, _ = refs[pair].kneighbors(scaled[rows])
            d = dist.mean(axis=1)
            out[rows] = np.fmin(out[rows], d)
        return out

    def _standardise(self, Z: np.ndarray) -> np.ndarray:
        scaled: np.ndarray = (Z - self.distance_.center_) / self.distance_.scale_
        return scaled

    def ion_distances(self, Z: Any, wanted: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Per target ion: mean distance of each row to the k nearest training rows containing that ion
        (NaN for non-finite rows, and for the rows ``wanted[ion]``, a boolean mask, leaves out); empty
        when the same-ion rule is off."""
        refs: dict[str, NearestNeighbors] = getattr(self, "ion_neighbours_", None) or {}
        Z = np.asarray(Z, dtype=float)
        ok = np.isfinite(Z).all(axis=1)
        out: dict[str, np.ndarray] = {}
        for ion, nn in refs.items():
            d = np.full(len(Z), np.nan)
            rows = ok if wanted is None or ion not in wanted else ok & wanted[ion]
            if rows.any():
                dist, _ = nn.kneighbors(self._standardise(Z[rows]))
                d[rows] = dist.mean(axis=1)
            out[ion] = d
        return out

    def _ion_rows(self, classes: Sequence[ChemClass] | None) -> dict[str, np.ndarray]:
        """Per target ion, the rows whose same-ion distance a reason reads (``_ion_support_reason``): the
        rows of a class holding the ion, and none at all when class support replaces the same-ion rule."""
        ions = getattr(self, "ion_neighbours_", None) or {}
        n = 0 if classes is None else len(classes)
        rows = {ion: np.zeros(n, dtype=bool) for ion in ions}
        if classes is None or getattr(self, "pair_neighbours_", None):
            return rows
        for i, cls in enumerate(classes):
            for ion, _anions in cls:
                mask = rows.get(ion) if ion is not None else None
                if mask is not None:
                    mask[i] = True
        return rows

    def class_reason(self, cls: ChemClass) -> str:
        """Empty when every (ion, anions) pair of ``cls`` occurs in the training data, else why not."""
        check_is_fitted(self, "distance_")
        counts = getattr(self, "class_counts_", None)  # None: rule off (or a model fitted before it)
        if counts is None:
            return ""
        parts: list[str] = []
        for ion, anions in sorted(cls, key=_pair_sort_key):
            if (ion, anions) in counts:
                continue
            seen = sorted(
                ((a, n) for (i, a), n in counts.items() if i == ion), key=lambda t: (-t[1], sorted(t[0]))
            )
            shown = ", ".join(
                f"{_anions_text(a)} ({n} row{'' if n == 1 else 's'})" for a, n in seen[: self._SEEN_SHOWN]
            )
            if len(seen) > self._SEEN_SHOWN:
                shown += f", {len(seen) - self._SEEN_SHOWN} more"
            if ion is None:
                ions = "/".join(getattr(self, "ion_elements_", ()))
                who = f"compound without {ions}" if ions else "compound"
                label = f" without {ions}" if ions else ""
            else:
                who, label = f"{ion} compound", f" for {ion}"
            parts.append(
                f"no {who} with anions {_anions_text(anions)} in the training data "
                f"(seen{label}: {shown or 'none'})"
            )
        return "; ".join(parts)

    def _class_support_reason(self, cls: ChemClass, distance: float) -> str:
        """ "" when a row's distance to the training rows of its own class is within the threshold."""
        if not np.isfinite(distance) or distance <= self.threshold_:
            return ""
        pairs = sorted((p for p in cls if p[0] is not None), key=_pair_sort_key)
        who = " / ".join(f"{p[0]} {_anions_text(p[1])}" for p in pairs)
        return (
            f"no close compound of its class ({who}) in the training data: distance {distance:.3g} to the "
            f"nearest rows of that class > threshold {self.threshold_:.3g}"
        )

    def _ion_support_reason(self, cls: ChemClass, ion_dist: dict[str, np.ndarray], i: int) -> str:
        """ "" when row ``i`` is within the threshold of the training rows of one of its ions."""
        ions = sorted(p[0] for p in cls if p[0] is not None and p[0] in ion_dist)
        if not ions:
            return ""
        values = [float(ion_dist[ion][i]) for ion in ions]
        best = min(values)
        if not np.isfinite(best) or best <= self.threshold_:
            return ""
        who = "/".join(ions)
        return (
            f"no close {who} compound in the training data: distance {best:.3g} to the "
            f"{self.distance_.k_} nearest {who} rows > threshold {self.threshold_:.3g}"
        )

    def _content_reason(self, cls: ChemClass, contents: np.ndarray) -> str:
        """ "" when each of the row's (ion, anions) pairs has its ion content within its class's training
        range (or the rule is off / the content is unknown), else why not."""
        return self._content_rule()(cls, contents)

    def _content_rule(self) -> Callable[[ChemClass, np.ndarray], str]:
        """``_content_reason`` as a function with its per-class checks (pairs in order, with their widened
        bounds) worked out once per class, for the rows of one ``assess`` call."""
        ranges: dict[ClassPair, tuple[float, float]] | None = getattr(self, "content_ranges_", None)
        if not ranges:
            return lambda cls, contents: ""
        widen = float(np.exp(getattr(self, "content_tolerance_", 0.0)))  # absent: a model fitted before it
        slack = "" if widen == 1.0 else f" widened by {100.0 * (widen - 1.0):.3g}% (learned on grouped CV)"
        ions = self.ion_elements_
        checks: dict[ChemClass, list[tuple[ClassPair, int, float, float, float, float]]] = {}

        def of_class(cls: ChemClass) -> list[tuple[ClassPair, int, float, float, float, float]]:
            found = checks.get(cls)
            if found is None:
                found = checks[cls] = []
                for pair in sorted(cls, key=_pair_sort_key):
                    if pair not in ranges or pair[0] not in ions:
                        continue
                    lo, hi = ranges[pair]
                    bounds = (lo / widen - CONTENT_TOLERANCE, hi * widen + CONTENT_TOLERANCE)
                    found.append((pair, ions.index(pair[0]), lo, hi, *bounds))
            return found

        def reason(cls: ChemClass, contents: np.ndarray) -> str:
            parts = []
            for pair, column, lo, hi, low, high in of_class(cls):
                value = float(contents[column])
                if math.isfinite(value) and not low <= value <= high:
                    parts.append(
                        f"{pair[0]} content {value:.3g} per anion atom outside the range of the training "
                        f"rows of its class ({pair[0]} {_anions_text(pair[1])}: {lo:.3g}-{hi:.3g}{slack}): "
                        "the carrier concentration is extrapolated"
                    )
            return "; ".join(parts)

        return reason

    def share_neighbour_search(self, enabled: bool = True) -> ApplicabilityDomain:
        """``assess`` computes the distances once for all neighbour sets (models.knn; the default) or, with
        False, with each set's own sklearn search as before (the reference the benchmark and the tests
        compare with)."""
        if enabled:
            _SHARED_KNN.pop(self, None)
        else:
            _SHARED_KNN[self] = False
        return self

    def _shared_knn(self) -> SubsetKnn | None:
        built = _SHARED_KNN.get(self)
        if built is None:
            subsets: dict[Hashable, NearestNeighbors] = {
                ("ion", ion): nn for ion, nn in (getattr(self, "ion_neighbours_", None) or {}).items()
            }
            pairs: dict[ClassPair, NearestNeighbors] = getattr(self, "pair_neighbours_", None) or {}
            subsets |= {("pair", pair): nn for pair, nn in pairs.items()}
            built = SubsetKnn.from_neighbours(self.distance_.nn_, subsets) or False
            _SHARED_KNN[self] = built
        return built if isinstance(built, SubsetKnn) else None

    def _shared_distances(
        self, Z: Any, classes: Sequence[ChemClass] | None
    ) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray] | None:
        """``distances``, ``ion_distances`` (for the rows ``_ion_rows`` names) and ``class_distances``
        from one distance computation (models.knn), or None when this domain's neighbours cannot share it
        or ``Z`` has more rows than ``models.knn.MAX_SHARED_QUERIES``."""
        knn = self._shared_knn()
        Z = np.asarray(Z, dtype=float)
        if knn is None or Z.ndim != 2 or Z.shape[1] != self.distance_.n_features_in_:
            return None
        if len(Z) > knn_module.MAX_SHARED_QUERIES:  # a large batch: sklearn's search is faster there
            return None
        n = len(Z)
        ok = np.isfinite(Z).all(axis=1)
        full = np.full(n, np.nan)
        parts: dict[Hashable, np.ndarray] = {}
        if ok.any():
            full_ok, parts_ok = knn.mean_distances(
                self._standardise(Z[ok]), self._wanted(classes, ok), named_only=True
            )
            full[ok] = full_ok
            for key, values in parts_ok.items():
                parts[key] = np.full(n, np.nan)
                parts[key][ok] = values
        if classes is None:
            return full, {}, np.full(n, np.nan)
        ions = getattr(self, "ion_neighbours_", None) or {}
        ion_dist = {ion: parts.get(("ion", ion), np.full(n, np.nan)) for ion in ions}
        class_dist = np.full(n, np.nan)
        if getattr(self, "pair_neighbours_", None):
            for i, cls in enumerate(classes):
                if ok[i]:
                    for pair in cls:
                        pair_dist = parts.get(("pair", pair))
                        if pair_dist is not None:
                            class_dist[i] = np.fmin(class_dist[i], pair_dist[i])
        return full, ion_dist, class_dist

    def _wanted(self, classes: Sequence[ChemClass] | None, ok: np.ndarray) -> dict[Hashable, np.ndarray]:
        """The finite (``ok``) rows each neighbour subset of ``_shared_knn`` is searched for: a class's
        for the queries of that class (as ``class_distances`` does), an ion's where a reason reads it
        (``_ion_rows``). Without ``classes``: no class's rows, every ion's (their distances are unused).
        Only the subsets with at least one such row are named (``SubsetKnn.mean_distances(...,
        named_only=True)`` searches those alone; the others' distances would all be NaN).
        """
        n_ok = int(ok.sum())
        ions = getattr(self, "ion_neighbours_", None) or {}
        if classes is None:
            return {("ion", ion): np.ones(n_ok, dtype=bool) for ion in ions}
        wanted: dict[Hashable, np.ndarray] = {
            ("ion", ion): mask[ok] for ion, mask in self._ion_rows(classes).items() if mask[ok].any()
        }
        pairs = getattr(self, "pair_neighbours_", None) or {}
        for j, row in enumerate(np.flatnonzero(ok).tolist()):
            for pair in classes[row]:
                if pair in pairs:
                    mask = wanted.get(("pair", pair))
                    if mask is None:
                        mask = wanted[("pair", pair)] = np.zeros(n_ok, dtype=bool)
                    mask[j] = True
        return wanted

    def distances(self, Z: Any) -> np.ndarray:
        check_is_fitted(self, "distance_")
        return self.distance_.mean_knn_distance(Z)

    def _assess_distances(self, Z: np.ndarray, classes: Sequence[ChemClass] | None) -> tuple[Any, Any, Any]:
        """(distance, same-ion distances, class distance) per row, shared searches when possible."""
        shared = self._shared_distances(Z, classes)
        if shared is not None:
            return shared
        # sklearn's neighbour searches (a domain whose neighbours SubsetKnn cannot share)
        dist = self.distances(Z)
        ion_dist = self.ion_distances(Z, self._ion_rows(classes)) if classes is not None else {}
        class_dist = self.class_distances(Z, classes) if classes is not None else np.full(len(dist), np.nan)
        return dist, ion_dist, class_dist

    def assess(
        self,
        Z: Any,
        element_sets: Sequence[Iterable[str]],
        classes: Sequence[ChemClass] | None = None,
        contents: Any = None,
    ) -> tuple[np.ndarray, list[str], np.ndarray]:
        """(in_domain bool array, reason per row ("" when in domain), distance per row).

        ``contents`` (``ion_contents`` of the rows, with the domain's ``ion_elements_``) applies the
        carrier-content rule when the domain was fitted with training contents.

        ``classes`` (``chemistry_classes`` of the rows) applies the chemistry-class rule when the domain
        was fitted with training classes; reasons are computed once per distinct element set / class."""
        check_is_fitted(self, "distance_")
        Z = np.asarray(Z, dtype=float)
        if classes is not None and len(classes) != len(Z):
            raise ValueError(f"got {len(classes)} chemistry classes for {len(Z)} feature rows")
        dist, ion_dist, class_dist = self._assess_distances(Z, classes)
        if len(element_sets) != len(dist):
            raise ValueError(f"got {len(element_sets)} element sets for {len(dist)} feature rows")
        class_reasons: dict[ChemClass, str] = {}
        k = self.distance_.k_
        finite = np.isfinite(dist)
        far = np.zeros(len(dist), dtype=bool)
        far[finite] = dist[finite] > self.threshold_
        unseen_reason: dict[frozenset[str], str] = {}  # a batch has few distinct element sets
        in_domain = np.ones(len(dist), dtype=bool)
        reasons: list[str] = []
        content_arr = None if contents is None else np.asarray(contents, dtype=float)
        if content_arr is not None and len(content_arr) != len(dist):
            raise ValueError(f"got {len(content_arr)} ion-content rows for {len(dist)} feature rows")
        content_reason = self._content_rule()
        for i, elements in enumerate(element_sets):
            key = elements if isinstance(elements, frozenset) else frozenset(elements)
            unseen = unseen_reason.get(key)
            if unseen is None:
                missing = sorted(key - self.training_elements_, key=_element_sort_key)
                unseen = f"elements not in the training data: {', '.join(missing)}" if missing else ""
                unseen_reason[key] = unseen
            if classes is not None:
                cls = classes[i]
                new_class = class_reasons.get(cls)
                if new_class is None:
                    new_class = class_reasons[cls] = self.class_reason(cls)
                if new_class:
                    unseen = f"{unseen}; {new_class}" if unseen else new_class
                support = (
                    self._class_support_reason(cls, float(class_dist[i]))
                    if getattr(self, "pair_neighbours_", None)
                    else self._ion_support_reason(cls, ion_dist, i)
                )
                if support:
                    unseen = f"{unseen}; {support}" if unseen else support
                if content_arr is not None:
                    content = content_reason(cls, content_arr[i])
                    if content:
                        unseen = f"{unseen}; {content}" if unseen else content
            if finite[i] and not far[i]:
                in_domain[i] = not unseen
                reasons.append(unseen)
                continue
            parts = [unseen] if unseen else []
            if not finite[i]:
                parts.append("features are not finite (cannot measure the distance to the training data)")
            else:
                parts.append(
                    f"feature-space distance {dist[i]:.3g} > threshold {self.threshold_:.3g} "
                    f"(mean of {k} nearest training rows)"
                )
            in_domain[i] = False
            reasons.append("; ".join(parts))
        return in_domain, reasons, dist
