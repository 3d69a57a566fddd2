"""matminer's own featurizers: the reference every fast path is tested against.

Each function takes pymatgen Compositions and returns a float64 (n, features) array, calling the matminer
featurizer's ``featurize`` once per composition (``n_jobs`` is set to 1: matminer's multiprocessing hangs
inside Ray and adds nothing to a reference). Featurizers are built once per process.

Oxidation states: matminer's ``CompositionToOxidComposition`` returns a composition with every state 0
when pymatgen finds no charge-balanced guess (and raises for compositions whose reduced formula has more
than 50 atoms). Both are failures, not states, so ``oxidation_state_reference`` returns NaN for them
(a single element, whose state really is 0, is kept).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

OXIDATION_STATE_STATS: tuple[str, ...] = ("minimum", "maximum", "range", "std_dev")


@functools.cache
def _featurizer(kind: str) -> Any:
    from matminer.featurizers.composition import (
        ElementProperty,
        IonProperty,
        OxidationStates,
        Stoichiometry,
        ValenceOrbital,
    )
    from matminer.featurizers.conversions import CompositionToOxidComposition

    featurizer: Any
    if kind == "magpie":
        featurizer = ElementProperty.from_preset("magpie")
    elif kind == "stoichiometry":
        featurizer = Stoichiometry()
    elif kind == "valence_orbital":
        featurizer = ValenceOrbital()
    elif kind == "ion_property":
        featurizer = IonProperty(fast=False)
    elif kind == "ion_property_fast":
        featurizer = IonProperty(fast=True)
    elif kind == "oxidation_states":
        featurizer = OxidationStates(stats=list(OXIDATION_STATE_STATS))
    elif kind == "to_oxid":
        featurizer = CompositionToOxidComposition()
    else:
        raise ValueError(f"unknown matminer featurizer {kind!r}")
    featurizer.set_n_jobs(1)
    return featurizer


def feature_labels(kind: str) -> list[str]:
    return list(_featurizer(kind).feature_labels())


def citations(kind: str) -> list[str]:
    return list(_featurizer(kind).citations())


def _run(kind: str, comps: Sequence[Any]) -> np.ndarray:
    featurizer = _featurizer(kind)
    n_features = len(featurizer.feature_labels())
    out = np.empty((len(comps), n_features), dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, comp in enumerate(comps):
            out[i] = np.asarray(featurizer.featurize(comp), dtype=np.float64)
    return out


def magpie_reference(comps: Sequence[Any]) -> np.ndarray:
    """``ElementProperty.from_preset("magpie")``: 132 features."""
    return _run("magpie", comps)


def stoichiometry_reference(comps: Sequence[Any]) -> np.ndarray:
    """``Stoichiometry()``: p-norms 0, 2, 3, 5, 7, 10."""
    return _run("stoichiometry", comps)


def valence_orbital_reference(comps: Sequence[Any]) -> np.ndarray:
    """``ValenceOrbital()``: avg and frac of s, p, d, f valence electrons."""
    return _run("valence_orbital", comps)


def ion_property_reference(comps: Sequence[Any]) -> np.ndarray:
    """``IonProperty(fast=False)``: compound possible (pymatgen oxidation-state guessing), max and avg
    ionic character.

    pymatgen's guessing refuses non-integer compositions (ValueError), which would lose the whole row in
    matminer. For those rows ``compound possible`` is NaN (matminer cannot decide) and the two ionic
    character columns come from ``IonProperty(fast=True)``, whose ionic-character code is the same.
    """
    slow = _featurizer("ion_property")
    fast = _featurizer("ion_property_fast")
    out = np.empty((len(comps), 3), dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, comp in enumerate(comps):
            try:
                out[i] = np.asarray(slow.featurize(comp), dtype=np.float64)
            except ValueError:
                out[i] = np.asarray(fast.featurize(comp), dtype=np.float64)
                out[i, 0] = np.nan
    return out


def oxidation_state_reference(comps: Sequence[Any]) -> np.ndarray:
    """``CompositionToOxidComposition`` then ``OxidationStates`` (minimum, maximum, range, std_dev);
    NaN where matminer's guessing fails (see the module docstring)."""
    to_oxid = _featurizer("to_oxid")
    stats = _featurizer("oxidation_states")
    out = np.full((len(comps), len(OXIDATION_STATE_STATS)), np.nan, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, comp in enumerate(comps):
            try:
                oxid = to_oxid.featurize(comp)[0]
            except ValueError:
                continue  # reduced formula above max_sites atoms: matminer gives up
            states = [s.oxi_state for s in oxid]
            if len(states) > 1 and all(s == 0 for s in states):
                continue  # pymatgen found no charge-balanced guess
            out[i] = np.asarray(stats.featurize(oxid), dtype=np.float64)
    return out
