"""The material families a screen can target: which targets each predicts and how its formulas are read."""

from __future__ import annotations

from dataclasses import dataclass

from models.targets import TargetName

__all__ = ["FAMILIES", "Family"]


@dataclass(frozen=True)
class Family:
    """A material family: cathode or electrolyte, the targets it is scored on, its structure type."""

    name: str
    kind: str  # "cathode" | "electrolyte"
    targets: tuple[TargetName, ...]
    structure_type: str | None
    description: str
    allow_peroxide: bool = False  # O may rise above -2 (formulas written from Na2O2)


_CATHODE = (TargetName.AVERAGE_VOLTAGE, TargetName.CAPACITY_RETENTION)
_ELECTROLYTE = (TargetName.IONIC_CONDUCTIVITY,)
FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("p2_layered_oxide", "cathode", _CATHODE, "P2", "P2-type layered oxide cathode"),
        Family("o3_layered_oxide", "cathode", _CATHODE, "O3", "O3-type layered oxide cathode"),
        Family("p3_layered_oxide", "cathode", _CATHODE, "P3", "P3-type layered oxide cathode"),
        Family("layered_oxide", "cathode", _CATHODE, None, "layered oxide cathode, stacking unspecified"),
        Family("polyanion_cathode", "cathode", _CATHODE, None, "polyanion cathode"),
        Family("oxychloride", "electrolyte", _ELECTROLYTE, None, "(amorphous) oxychloride electrolyte", True),
        Family("halide", "electrolyte", _ELECTROLYTE, None, "crystalline halide electrolyte"),
        Family("nasicon", "electrolyte", _ELECTROLYTE, None, "NASICON oxide electrolyte"),
        Family("sulfide", "electrolyte", _ELECTROLYTE, None, "sulfide electrolyte"),
        Family("oxide_electrolyte", "electrolyte", _ELECTROLYTE, None, "oxide electrolyte"),
    )
}
