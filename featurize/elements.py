"""The chemical elements nascreen knows, and the element groups screening works with.

Range: hydrogen (Z=1) to lawrencium (Z=103). That is exactly the range for which matminer's Magpie
element tables (``matminer/utils/data_files/magpie_elementdata/*.table``) carry values for every
property: rows 1-103 are complete, rows above 103 are mostly "Missing". A composition with an element
outside this range could not be featurised consistently, so it is refused at parse time
(``featurize.composition``), not turned into NaN features later.

Deuterium/tritium ("D", "T") and pymatgen's dummy species ("X", "Xx", ...) are NOT elements here.
"""

from __future__ import annotations

from types import MappingProxyType

__all__ = [
    "ACTINIDES",
    "ALKALINE_EARTH_METALS",
    "ALKALI_METALS",
    "CHALCOGENS",
    "ELEMENTS",
    "HALOGENS",
    "LANTHANIDES",
    "METALLOIDS",
    "NOBLE_GASES",
    "PNICTOGENS",
    "POST_TRANSITION_METALS",
    "RADIOACTIVE",
    "RARE_EARTHS",
    "TETRELS",
    "TRANSITION_METALS",
    "TRANSITION_METALS_3D",
    "TRANSITION_METALS_4D",
    "TRANSITION_METALS_5D",
    "TRIELS",
    "Z_MAX",
    "atomic_number",
    "elements_in_z_range",
    "is_element",
    "symbol",
]

#: Element symbols indexed by atomic number - 1 (``ELEMENTS[0] == "H"``).
ELEMENTS: tuple[str, ...] = (
    "H", "He",
    "Li", "Be", "B", "C", "N", "O", "F", "Ne",
    "Na", "Mg", "Al", "Si", "P", "S", "Cl", "Ar",
    "K", "Ca", "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "As", "Se", "Br", "Kr",
    "Rb", "Sr", "Y", "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd", "In", "Sn", "Sb", "Te", "I", "Xe",
    "Cs", "Ba",
    "La", "Ce", "Pr", "Nd", "Pm", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho", "Er", "Tm", "Yb", "Lu",
    "Hf", "Ta", "W", "Re", "Os", "Ir", "Pt", "Au", "Hg", "Tl", "Pb", "Bi", "Po", "At", "Rn",
    "Fr", "Ra",
    "Ac", "Th", "Pa", "U", "Np", "Pu", "Am", "Cm", "Bk", "Cf", "Es", "Fm", "Md", "No", "Lr",
)  # fmt: skip

#: Largest atomic number accepted (lawrencium): the end of Magpie's complete element data.
Z_MAX: int = len(ELEMENTS)

_Z: MappingProxyType[str, int] = MappingProxyType({s: i + 1 for i, s in enumerate(ELEMENTS)})


def is_element(sym: object) -> bool:
    """True iff ``sym`` is exactly (case-sensitive) the symbol of an element H..Lr."""
    return isinstance(sym, str) and sym in _Z


def atomic_number(sym: str) -> int:
    """Atomic number of an element symbol; ``ValueError`` naming the symbol if it is not an element."""
    try:
        return _Z[sym]
    except (KeyError, TypeError):
        raise ValueError(f"{sym!r}: unknown element (nascreen knows H..Lr, Z=1..{Z_MAX})") from None


def symbol(z: int) -> str:
    """Element symbol of atomic number ``z`` (1..103)."""
    if isinstance(z, bool) or not isinstance(z, int) or not 1 <= z <= Z_MAX:
        raise ValueError(f"{z!r}: not an atomic number in 1..{Z_MAX}")
    return ELEMENTS[z - 1]


def elements_in_z_range(lo: int, hi: int) -> frozenset[str]:
    """Symbols with ``lo <= Z <= hi`` (both inclusive)."""
    return frozenset(ELEMENTS[z - 1] for z in range(max(lo, 1), min(hi, Z_MAX) + 1))


# --- groups (named frozensets; all members are in ELEMENTS, a test checks it) ---
ALKALI_METALS = frozenset({"Li", "Na", "K", "Rb", "Cs", "Fr"})
ALKALINE_EARTH_METALS = frozenset({"Be", "Mg", "Ca", "Sr", "Ba", "Ra"})
#: d-block by period. 3d: Sc..Zn, 4d: Y..Cd, 5d: Hf..Hg (La is counted with the lanthanides).
TRANSITION_METALS_3D = elements_in_z_range(21, 30)
TRANSITION_METALS_4D = elements_in_z_range(39, 48)
TRANSITION_METALS_5D = elements_in_z_range(72, 80)
TRANSITION_METALS = TRANSITION_METALS_3D | TRANSITION_METALS_4D | TRANSITION_METALS_5D
LANTHANIDES = elements_in_z_range(57, 71)  # La..Lu
ACTINIDES = elements_in_z_range(89, 103)  # Ac..Lr
RARE_EARTHS = LANTHANIDES | {"Sc", "Y"}
TRIELS = frozenset({"B", "Al", "Ga", "In", "Tl"})  # group 13
TETRELS = frozenset({"C", "Si", "Ge", "Sn", "Pb"})  # group 14
PNICTOGENS = frozenset({"N", "P", "As", "Sb", "Bi"})  # group 15
CHALCOGENS = frozenset({"O", "S", "Se", "Te", "Po"})  # group 16
HALOGENS = frozenset({"F", "Cl", "Br", "I", "At"})  # group 17
NOBLE_GASES = frozenset({"He", "Ne", "Ar", "Kr", "Xe", "Rn"})
POST_TRANSITION_METALS = frozenset({"Al", "Ga", "In", "Sn", "Tl", "Pb", "Bi"})
METALLOIDS = frozenset({"B", "Si", "Ge", "As", "Sb", "Te"})
#: No stable isotope: Tc, Pm and everything from Po (Z=84) up. Screening excludes these as dopants.
RADIOACTIVE = frozenset({"Tc", "Pm"}) | elements_in_z_range(84, 103)
