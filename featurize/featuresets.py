"""Named, versioned composition feature sets: the registry and the composite set.

A feature-set name carries its version (``magpie_v1``) and is part of a model's contract: a model records
the name it was trained on and gets the same columns, in the same order, back from ``get_feature_set``.
Any change to what a set computes gets a new version, never an edit of an existing one.

=====================  ===========================================================================
``magpie_v1``          matminer ``ElementProperty.from_preset("magpie")`` (132)
``stoichiometry_v1``   matminer ``Stoichiometry()`` (6)
``valence_orbital_v1`` matminer ``ValenceOrbital()`` (8)
``oxidation_v1``       matminer ``IonProperty`` labels (3) + ``OxidationStates`` labels (4), from
                       ``featurize.oxidation``'s charge-balance assignment (see its module)
``composite_v1``       all of the above, concatenated in that order (153)
``oxidation_v2``       the same 7 labels from the current ``featurize.oxidation`` rules (O at -2,
                       near-neutral tolerance, redox order by couple potential; v1 keeps the old rules)
``composite_v2``       magpie_v1 + stoichiometry_v1 + valence_orbital_v1 + oxidation_v2 (153)
=====================  ===========================================================================

Short aliases (``magpie``, ``stoichiometry``, ``valence_orbital``, ``oxidation``, ``composite``) resolve to
the current version; models must store the versioned name (``FeatureSet.name``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import ClassVar

import numpy as np

from featurize.sets.base import CompositionLike, ElementBatch, FeatureSet
from featurize.sets.citations import MATMINER_2018


def _magpie() -> FeatureSet:
    from featurize.sets.magpie import MagpieV1

    return MagpieV1()


def _stoichiometry() -> FeatureSet:
    from featurize.sets.stoichiometry import StoichiometryV1

    return StoichiometryV1()


def _valence_orbital() -> FeatureSet:
    from featurize.sets.valence_orbital import ValenceOrbitalV1

    return ValenceOrbitalV1()


def _oxidation() -> FeatureSet:
    from featurize.sets.oxidation import OxidationV1

    return OxidationV1()


def _oxidation_v2() -> FeatureSet:
    from featurize.sets.oxidation import OxidationV2

    return OxidationV2()


class CompositeV1(FeatureSet):
    """magpie_v1 + stoichiometry_v1 + valence_orbital_v1 + oxidation_v1, columns in that order."""

    name: ClassVar[str] = "composite_v1"
    version: ClassVar[int] = 1
    PARTS: ClassVar[tuple[str, ...]] = ("magpie_v1", "stoichiometry_v1", "valence_orbital_v1", "oxidation_v1")

    @property
    def parts(self) -> list[FeatureSet]:
        return [get_feature_set(name) for name in self.PARTS]

    def feature_labels(self) -> list[str]:
        return [label for part in self.parts for label in part.feature_labels()]

    def citations(self) -> list[str]:
        return list(dict.fromkeys(c for part in self.parts for c in part.citations()))

    def compute_batch(self, batch: ElementBatch) -> np.ndarray:
        return np.concatenate([part.compute_batch(batch) for part in self.parts], axis=1)

    def compute_reference(self, comps: Sequence[CompositionLike]) -> np.ndarray:
        return np.concatenate([part.compute_reference(comps) for part in self.parts], axis=1)


class CompositeV2(CompositeV1):
    """magpie_v1 + stoichiometry_v1 + valence_orbital_v1 + oxidation_v2, columns in that order."""

    name: ClassVar[str] = "composite_v2"
    version: ClassVar[int] = 2
    PARTS: ClassVar[tuple[str, ...]] = ("magpie_v1", "stoichiometry_v1", "valence_orbital_v1", "oxidation_v2")


def _composite() -> FeatureSet:
    return CompositeV1()


def _composite_v2() -> FeatureSet:
    return CompositeV2()


_FACTORIES: dict[str, Callable[[], FeatureSet]] = {
    "magpie_v1": _magpie,
    "stoichiometry_v1": _stoichiometry,
    "valence_orbital_v1": _valence_orbital,
    "oxidation_v1": _oxidation,
    "composite_v1": _composite,
    "oxidation_v2": _oxidation_v2,
    "composite_v2": _composite_v2,
}
#: Short name -> newest version (the dict keeps insertion order, so a later version wins).
_ALIASES: dict[str, str] = {name.rsplit("_v", 1)[0]: name for name in _FACTORIES}

FEATURE_SET_NAMES: tuple[str, ...] = tuple(_FACTORIES)
CITATIONS_COMMON: tuple[str, ...] = (MATMINER_2018,)


def resolve_name(name: str) -> str:
    """``"magpie"`` or ``"magpie_v1"`` -> ``"magpie_v1"``; a clear ValueError for anything else."""
    key = name.strip().lower()
    if key in _FACTORIES:
        return key
    if key in _ALIASES:
        return _ALIASES[key]
    known = ", ".join([*FEATURE_SET_NAMES, *_ALIASES])
    raise ValueError(f"unknown feature set {name!r}; known: {known}")


@functools.cache
def _cached(name: str) -> FeatureSet:
    return _FACTORIES[name]()


def get_feature_set(name: str) -> FeatureSet:
    """The feature set for a (versioned or short) name. Instances are shared and stateless."""
    return _cached(resolve_name(name))
