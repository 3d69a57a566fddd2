"""Phase / processing state of a solid electrolyte: one definition for curation, model input and serving.

A conductivity depends on the phase as much as on the composition (NaTaCl6: ~1e-6 S/cm annealed crystalline,
~4e-3 S/cm amorphous after long milling; Na3PS4: 1e-6 tetragonal, ~5e-4 cubic glass-ceramic), so the
conductivity model takes ``phase`` as an optional input column with these values:

- ``crystalline``: a crystalline phase (any polymorph; sintered, annealed, solid-state route)
- ``amorphous``: X-ray amorphous solid (e.g. long ball milling), not described as a glass
- ``glass``: a glass (melt-quenched or milled glass, "viscoelastic glass")
- ``glass-ceramic``: crystals in a glassy/amorphous matrix (incl. crystalline-amorphous heterostructures)
- ``unknown``: not given. The default: a query without a phase is predicted as the rows whose source did
  not state one, and the answer says the phase was unknown.
"""

from __future__ import annotations

import math

PHASES: tuple[str, ...] = ("crystalline", "amorphous", "glass", "glass-ceramic", "unknown")
DEFAULT_PHASE = "unknown"
PHASE_COLUMN = "phase"

# spellings a user may type for each phase (after lower-casing, "_" and " " -> "-")
_ALIASES = {
    "crystal": "crystalline",
    "crystalline": "crystalline",
    "cryst": "crystalline",
    "polycrystalline": "crystalline",
    "amorphous": "amorphous",
    "amorph": "amorphous",
    "glass": "glass",
    "glassy": "glass",
    "glass-ceramic": "glass-ceramic",
    "glassceramic": "glass-ceramic",
    "gc": "glass-ceramic",
    "unknown": "unknown",
    "not-stated": "unknown",
    "none": "unknown",
    "": "unknown",
}

# structure families (curated ``structure_family`` labels) that name a crystal structure type
CRYSTALLINE_FAMILIES = frozenset(
    {
        "Anti-perovskite",
        "Argyrodite",
        "Garnet",
        "LGPS",
        "LISICON",
        "NASICON",
        "Olivine",
        "Perovskite",
        "Phenakite",
        "Rocksalt",
        "Thio-LISICON",
        "Tavorite",
        "Zircon",
        "pyrochlore",
        "Beta-alumina",
    }
)
_FAMILY_PHASE = {"Glass": "glass", "Glass-ceramic": "glass-ceramic", "LiPON": "amorphous"}


def is_missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def normalize_phase(value: object) -> tuple[str, str]:
    """A user's phase cell -> (phase, error): missing -> "unknown"; unrecognised -> an error naming it."""
    if is_missing(value):
        return DEFAULT_PHASE, ""
    key = str(value).strip().lower().replace("_", "-").replace(" ", "-")
    phase = _ALIASES.get(key)
    if phase is None:
        return DEFAULT_PHASE, f"phase={value!r} is not one of {', '.join(PHASES)}"
    return phase, ""


def phase_from_description(text: str) -> str:
    """The phase a source's own wording states ("amorphous (glass)", "glass-ceramic (cubic crystals)",
    "crystalline (monoclinic)", "crystalline (not explicit; ...)", "not stated") -> one of PHASES.

    A crystalline-amorphous heterostructure counts as glass-ceramic (crystals in an amorphous matrix);
    "crystalline (not explicit ...)" is unknown: the source does not state it."""
    t = text.strip().lower()
    if "not explicit" in t or t in {"", "not stated", "unknown"}:
        return DEFAULT_PHASE
    if t.startswith("glass-ceramic") or "heterostructure" in t:
        return "glass-ceramic"
    if t.startswith("amorphous") or t.startswith("glass"):
        return "glass" if "glass" in t else "amorphous"
    if t.startswith("crystalline"):
        return "crystalline"
    return DEFAULT_PHASE


def phase_from_family(family: str) -> str:
    """Phase implied by a structure-family label: a crystal structure type is crystalline, Glass/
    Glass-ceramic/LiPON say so, anything else (Halide, Sulfide, Oxide, Other, ...) is unknown."""
    if family in _FAMILY_PHASE:
        return _FAMILY_PHASE[family]
    return "crystalline" if family in CRYSTALLINE_FAMILIES else DEFAULT_PHASE
