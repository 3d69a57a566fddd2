"""The screening session's one rule for "every element the model knows", and that a spec that does not
ask for it never asks for the models."""

from __future__ import annotations

from typing import Any

import pytest

from models.targets import TargetName
from screening.session import model_elements, open_spec
from screening.spec import SpecError

P2: dict[str, Any] = {
    "name": "p2_known",
    "family": "p2_layered_oxide",
    "host": "Na0.6Li0.2Mn0.8O2",
    "site": "Mn",
    "dopants": "every element the model knows",
    "fractions": [0.05],
    "compensation": "na_content",
    "conditions": {"cycles": 100, "current_mA_g": 170, "voltage_low_V": 2.0, "voltage_high_V": 4.5},
}
KNOWN = {
    TargetName.AVERAGE_VOLTAGE: frozenset({"Na", "Mn", "O", "Ti", "Ru", "Mg"}),
    TargetName.CAPACITY_RETENTION: frozenset({"Na", "Mn", "O", "Ti", "Ru", "Fe"}),
    TargetName.IONIC_CONDUCTIVITY: frozenset({"Zr", "Hf", "Cl"}),
}


def test_model_elements_is_the_intersection_over_the_scoring_targets() -> None:
    asked: list[TargetName] = []

    def elements_of(target: TargetName) -> frozenset[str]:
        asked.append(target)
        return KNOWN[target]

    spec = open_spec(P2, elements_of=elements_of)
    # Mg (voltage only) and Fe (retention only) are not known to both models; Zr/Hf (conductivity) never
    # count for a cathode screen; Mn is the site; O never takes a positive state
    assert {d.element for d in spec.dopants} == {"Na", "Ti", "Ru"}
    assert sorted(asked) == sorted(spec.targets)
    # a subset of targets narrows the rule to the models that score
    only_v = open_spec({**P2, "targets": ["average_voltage"]}, elements_of=elements_of)
    assert {d.element for d in only_v.dopants} == {"Na", "Ti", "Ru", "Mg"}
    assert model_elements([], elements_of) == frozenset()


def test_a_spec_that_does_not_ask_loads_no_model() -> None:
    def elements_of(target: TargetName) -> frozenset[str]:
        raise AssertionError("models asked for a spec that lists its dopants")

    spec = open_spec({**P2, "dopants": ["Ti", "Ru"]}, elements_of=elements_of)
    assert [d.element for d in spec.dopants] == ["Ti", "Ru"]
    with pytest.raises(SpecError, match="needs the trained models"):
        open_spec(P2, elements_of=None)
