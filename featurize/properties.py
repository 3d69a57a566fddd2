"""Element-property tables as matrices: one row per element (Z = 1..118), one column per property.

The values come from matminer's own data classes reading the data files installed with matminer
(nothing is downloaded), with matminer's defaults (``impute_nan=True``: a missing value is replaced by
the mean of the property over the elements that have it, exactly as matminer does). Building the
matrix from matminer's classes, rather than re-reading the files, is what makes the fast path agree
with the reference for every element, the imputed ones included.

Tables are built once per process (``functools.cache``) and are read-only.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

N_ELEMENTS = 118

# The 22 Magpie properties of matminer's ElementProperty.from_preset("magpie"), in matminer's order.
MAGPIE_PROPERTIES: tuple[str, ...] = (
    "Number",
    "MendeleevNumber",
    "AtomicWeight",
    "MeltingT",
    "Column",
    "Row",
    "CovalentRadius",
    "Electronegativity",
    "NsValence",
    "NpValence",
    "NdValence",
    "NfValence",
    "NValence",
    "NsUnfilled",
    "NpUnfilled",
    "NdUnfilled",
    "NfUnfilled",
    "NUnfilled",
    "GSvolume_pa",
    "GSbandgap",
    "GSmagmom",
    "SpaceGroupNumber",
)


@dataclass(frozen=True)
class PropertyTable:
    """An (elements x properties) matrix with its labels. Row ``i`` is the element with Z = i + 1."""

    source: str  # matminer data-class name, used in feature labels ("MagpieData")
    properties: tuple[str, ...]
    values: np.ndarray  # (N_ELEMENTS, len(properties)), float64, read-only

    def column(self, prop: str) -> np.ndarray:
        return self.values[:, self.properties.index(prop)]


@functools.cache
def element_symbols() -> tuple[str, ...]:
    """Symbols of Z = 1..118, in order (pymatgen's periodic table)."""
    from pymatgen.core.periodic_table import Element

    return tuple(Element.from_Z(z).symbol for z in range(1, N_ELEMENTS + 1))


@functools.cache
def element_index() -> dict[str, int]:
    """Symbol -> row index in every PropertyTable (Z - 1)."""
    return {sym: i for i, sym in enumerate(element_symbols())}


@functools.cache
def magpie_table() -> PropertyTable:
    """matminer ``MagpieData(impute_nan=True)`` as a matrix over the 22 Magpie preset properties."""
    from matminer.utils.data import MagpieData

    data = MagpieData(impute_nan=True)
    values = np.array(
        [[float(data.all_elemental_props[p][sym]) for p in MAGPIE_PROPERTIES] for sym in element_symbols()],
        dtype=np.float64,
    )
    values.setflags(write=False)
    return PropertyTable(source="MagpieData", properties=MAGPIE_PROPERTIES, values=values)


@functools.cache
def pymatgen_electronegativity() -> np.ndarray:
    """Pauling electronegativity per element as matminer's ``PymatgenData(impute_nan=True)`` returns it
    (the default data source of ``IonProperty``; noble gases without a value get matminer's imputed mean).
    """
    import warnings

    from matminer.utils.data import PymatgenData
    from pymatgen.core.periodic_table import Element

    data = PymatgenData(impute_nan=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = np.array(
            [float(data.get_elemental_property(Element(sym), "X")) for sym in element_symbols()],
            dtype=np.float64,
        )
    values.setflags(write=False)
    return values
