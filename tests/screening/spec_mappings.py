"""Spec mappings shared by the candidate tests: the P2 seed host screened on its Mn site."""

from __future__ import annotations

from typing import Any

#: cycling conditions of the retention and voltage targets every P2 spec carries
CONDITIONS = {"cycles": 100, "current_mA_g": 170, "voltage_low_V": 2.0, "voltage_high_V": 4.5}


def p2_mapping(**changes: Any) -> dict[str, Any]:
    """The P2 Na0.6Li0.2Mn0.8O2 spec as a user writes it (before ``parse_spec``), with ``changes`` applied."""
    return {
        "name": "p2",
        "family": "p2_layered_oxide",
        "host": "Na0.6Li0.2Mn0.8O2",
        "site": "Mn",
        "dopants": ["Ru", "Mg", "Nb", "Mo"],
        "fractions": {"start": 0.05, "stop": 0.2, "step": 0.05},
        "compensation": {"mode": "variable_valence", "range": [3, 4]},
        "conditions": CONDITIONS,
        **changes,
    }
