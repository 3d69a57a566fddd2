"""Spec parsing and validation: every example spec loads; every bad field gets an error naming it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from models.targets import TargetName
from screening.candidates import count_candidates
from screening.spec import SpecError, expand_dopants, parse_grid, parse_spec
from screening.spec_io import load_spec

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples" / "specs").glob("*.yaml"))

P2: dict[str, Any] = {
    "name": "p2_test",
    "family": "p2_layered_oxide",
    "host": "Na0.6Li0.2Mn0.8O2",
    "site": "Mn",
    "dopants": ["Ru", "Ti", "Nb"],
    "fractions": [0.05, 0.1, 0.15, 0.2],
    "compensation": {"mode": "variable_valence", "range": [3, 4]},
    "conditions": {"cycles": 100, "current_mA_g": 170, "voltage_low_V": 2.0, "voltage_high_V": 4.5},
}


def spec_with(**changes: Any) -> dict[str, Any]:
    out = {**P2, **changes}
    return {k: v for k, v in out.items() if v is not None}


def test_example_specs_cover_the_seed_families() -> None:
    names = {p.name for p in EXAMPLES}
    assert {
        "p2_na0.6li0.2mn0.8o2_dopants.yaml",
        "o3_high_entropy_dopants.yaml",
        "na_li1-3_ru2-3_o2_dopants.yaml",
        "oxychloride_na2o2_mcly.yaml",
        "halide_na2zrcl6_dopants.yaml",
        "nasicon_zr_site.yaml",
    } <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_spec_loads(path: Path) -> None:
    spec = load_spec(path)
    assert spec.name == path.stem
    assert count_candidates(spec) > 1
    if spec.family.kind == "cathode":
        assert spec.targets == (TargetName.AVERAGE_VOLTAGE, TargetName.CAPACITY_RETENTION)
        assert spec.conditions.cycles and spec.conditions.current_mA_g and spec.conditions.voltage_high_V
    else:
        assert spec.targets == (TargetName.IONIC_CONDUCTIVITY,)


def test_substitution_spec_compiles_to_a_template() -> None:
    spec = parse_spec(P2)
    assert spec.form == "substitution"
    assert spec.host_formula == "Na0.6Li0.2Mn0.8O2"
    assert dict(spec.host_states)["Mn"] == pytest.approx(4.0)
    assert [d.element for d in spec.dopants] == ["Ti", "Nb", "Ru"]  # sorted by Z
    assert [d.valence for d in spec.dopants] == [4.0, 5.0, 4.0]  # preferred states
    assert spec.grids[0].values == (0.05, 0.1, 0.15, 0.2)
    assert "{M}{x}" in spec.templates[0].text
    assert count_candidates(spec) == 1 + 3 * 4


def test_grid_forms() -> None:
    assert parse_grid({"start": 0.05, "stop": 0.2, "step": 0.05}, "x", "f").values == (0.05, 0.1, 0.15, 0.2)
    assert parse_grid({"values": [0.1]}, "x", "f").values == (0.1,)
    assert parse_grid(0.3, "x", "f").values == (0.3,)


def test_valence_policy_all_and_overrides() -> None:
    spec = parse_spec(
        spec_with(
            dopants=["Ru", "Mo"], valence_policy="all", valences={"Mo": [5, 6]}, compensation="na_content"
        )
    )
    assert [(d.element, d.valence) for d in spec.dopants] == [
        ("Mo", 5.0),
        ("Mo", 6.0),
        ("Ru", 3.0),
        ("Ru", 4.0),
        ("Ru", 5.0),
    ]


def test_dopant_groups() -> None:
    assert "Ru" in expand_dopants("4d and 5d transition metals", "d")
    assert "Mn" not in expand_dopants("4d_5d_tm", "d")
    tc_free = expand_dopants(["4d_tm"], "d")
    assert "Tc" not in tc_free  # radioactive elements are left out of groups
    lanth = expand_dopants("lanthanides", "d")
    assert lanth[0] == "La" and "Pm" not in lanth
    # the site element is removed from a group, but naming it explicitly is an error
    spec = parse_spec(spec_with(dopants="3d_tm"))
    assert "Mn" not in {d.element for d in spec.dopants}
    with pytest.raises(SpecError, match="dopants: Mn is the substituted site"):
        parse_spec(spec_with(dopants=["Mn"]))


def test_model_elements_group_needs_the_set() -> None:
    with pytest.raises(SpecError, match="needs the set of elements the models were trained on"):
        parse_spec(spec_with(dopants="every element the model knows"))
    spec = parse_spec(
        spec_with(dopants="model_elements"), model_elements=frozenset({"Na", "Mn", "O", "Ru", "Ti", "Ar"})
    )
    # O never takes a positive state here, Ar is a noble gas, Mn is the site
    assert {d.element for d in spec.dopants} == {"Na", "Ru", "Ti"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dopants": ["Ru", "Xx"]}, r"dopants: unknown element or group 'Xx'"),
        ({"dopants": "noble metals"}, r"dopants: unknown element or group 'noble metals'"),
        ({"dopants": []}, r"dopants: needs element symbols"),
        ({"fractions": []}, r"fractions: empty grid"),
        ({"fractions": {"start": 0.2, "stop": 0.1, "step": 0.05}}, r"fractions: empty grid"),
        ({"fractions": {"start": 0.1, "stop": 0.2, "step": 0}}, r"fractions.step: must be > 0"),
        ({"fractions": {"start": 0.1, "stop": 0.2}}, r"fractions: needs a list or start/stop/step"),
        ({"fractions": [0.1, 0.9]}, r"fractions: 0.9 out of range \(0, 0.8\] for site Mn"),
        ({"fractions": [0.1, 0.1]}, r"fractions: duplicate values"),
        ({"fractions": [0.1, "a"]}, r"fractions\[1\]: 'a' is not a number"),
        ({"family": "perovskite"}, r"family: unknown family 'perovskite'"),
        ({"compensation": "magic"}, r"compensation: unknown mode 'magic'"),
        ({"compensation": None}, r"compensation: required"),
        ({"compensation": {"mode": "vacancy"}}, r"compensation.site: vacancy compensation needs"),
        ({"compensation": {"mode": "vacancy", "site": "K"}}, r"compensation: element 'K' is not in the host"),
        ({"compensation": {"mode": "variable_valence", "range": [4, 3]}}, r"compensation.range: low 4.0"),
        ({"site": "Co"}, r"site: 'Co' is not an element of the host"),
        ({"host": "Na0.6Li0.2Mn0.8Xy2"}, r"host: .*unknown element"),
        ({"host": "Na0.6Li0.2Mn0.8O3"}, r"host: 'Na0.6Li0.2Mn0.8O3' is not charge balanced"),
        (
            {"conditions": {"cycles": 100}},
            r"conditions: a p2_layered_oxide screen predicts capacity retention",
        ),
        (
            {"conditions": {**P2["conditions"], "voltage_low_V": 5.0}},
            r"conditions: voltage_low_V must be below voltage_high_V",
        ),
        ({"colour": "red"}, r"spec: unknown field\(s\) \['colour'\]"),
        ({"name": "bad name/with slash"}, r"name: needs letters"),
        ({"targets": ["ionic_conductivity"]}, r"targets: 'ionic_conductivity' is not a target of family"),
        ({"ranking": {"mode": "best"}}, r"ranking: mode: unknown mode 'best'"),
        (
            {"ranking": {"objectives": ["ionic_conductivity"]}},
            r"ranking: objectives\[0\]: 'ionic_conductivity'",
        ),
        ({"max_candidates": 5}, r"max_candidates: the grid has 13 candidates, above the cap 5"),
        ({"valence_policy": "max"}, r"valence_policy: 'max'"),
        ({"valences": {"Ru": 12}}, r"valences.Ru: 12.0 is not a cation valence"),
        ({"codoping": {"dopants": ["Ti"]}}, r"codoping: needs dopants and fractions"),
        ({"template": {"formula": "Na{x}"}}, r"compensation: a template writes its compensation"),
    ],
)
def test_validation_errors_name_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec(spec_with(**changes))


def test_grid_cap_is_configurable() -> None:
    with pytest.raises(SpecError, match="above the cap 12"):
        parse_spec(P2, max_candidates=12)
    assert count_candidates(parse_spec(P2, max_candidates=13)) == 13


TEMPLATE: dict[str, Any] = {
    "name": "oxy",
    "family": "oxychloride",
    "host": "Na2O2-HfCl4",
    "template": {"formula": "{x}Na2O2-{M}Cl{v}", "variables": {"x": [0.8, 1.0]}},
    "dopants": ["Hf", "Ta"],
}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"template": {"formula": "{x}Na2O2-{M}Cl{y}", "variables": {"x": [1]}}}, r"unknown variable 'y'"),
        (
            {"template": {"formula": "Na2O2-{M}Cl{v}", "variables": {"x": [1]}}},
            r"variable\(s\) \['x'\] not used",
        ),
        ({"template": {"formula": "{x}Na2O2-{M}Qq{v}", "variables": {"x": [1]}}}, r"unknown element 'Qq'"),
        (
            {"template": {"formula": "{x}Na2O2-{M}Cl{v}", "variables": {"x": []}}},
            r"template.variables.x: empty grid",
        ),
        ({"dopants": None}, r"dopants: the template uses \{M\}"),
        ({"site": "Hf"}, r"site: not used with a template"),
        (
            {"template": {"formula": "{x}Na2O2-HfCl4", "variables": {"x": [1]}}},
            r"dopants: the template has no \{M\}",
        ),
    ],
)
def test_template_validation_errors(changes: dict[str, Any], message: str) -> None:
    mapping = {k: v for k, v in {**TEMPLATE, **changes}.items() if v is not None}
    with pytest.raises(SpecError, match=message):
        parse_spec(mapping)


def test_toml_and_yaml_files(tmp_path: Path) -> None:
    toml = tmp_path / "p2.toml"
    toml.write_text(
        'name = "p2_toml"\nfamily = "p2_layered_oxide"\nhost = "Na0.6Li0.2Mn0.8O2"\nsite = "Mn"\n'
        'dopants = ["Ru"]\nfractions = {start = 0.05, stop = 0.1, step = 0.05}\n'
        'compensation = "variable_valence"\n'
        "[conditions]\ncycles = 100\ncurrent_mA_g = 170\nvoltage_low_V = 2.0\nvoltage_high_V = 4.5\n"
    )
    spec = load_spec(toml)
    assert count_candidates(spec) == 3
    assert spec.to_dict()["name"] == "p2_toml"
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match=r"bad\.yaml: not valid YAML"):
        load_spec(bad)
    with pytest.raises(SpecError, match=r"spec files are \.yaml, \.yml or \.toml"):
        load_spec(tmp_path / "spec.json")
    with pytest.raises(SpecError, match="no such spec file"):
        load_spec(tmp_path / "missing.yaml")
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(SpecError, match="must hold a mapping"):
        load_spec(listing)
    with pytest.raises(SpecError, match=r"p2.toml: fractions: 0.9 out of range"):
        load_spec(toml, overrides={"fractions": [0.9]})


def test_cli_string_forms() -> None:
    spec = parse_spec(spec_with(dopants="Ru, Nb", fractions="0.05:0.15:0.05"))
    assert [d.element for d in spec.dopants] == ["Nb", "Ru"]
    assert spec.grids[0].values == (0.05, 0.1, 0.15)
    assert parse_spec(spec_with(fractions="0.1,0.2")).grids[0].values == (0.1, 0.2)
    with pytest.raises(SpecError, match=r"fractions: '0\.1:0\.2' is not start:stop:step"):
        parse_spec(spec_with(fractions="0.1:0.2"))


def test_several_valences_need_a_formula_that_depends_on_them() -> None:
    with pytest.raises(SpecError, match="valence_policy: several valences per dopant give the same formula"):
        parse_spec(spec_with(valence_policy="all"))
    spec = parse_spec(
        spec_with(valence_policy="all", compensation="na_content", dopants=["Ru"], fractions=[0.1])
    )
    assert [d.valence for d in spec.dopants] == [3.0, 4.0, 5.0]


def test_grid_values_must_fit_the_formula_decimals() -> None:
    with pytest.raises(SpecError, match=r"fractions: 0\.00012 has more than 4 decimals"):
        parse_spec(spec_with(fractions=[0.1, 0.00012]))
    assert parse_spec(spec_with(fractions=[0.00012], decimals=5)).grids[0].values == (0.00012,)


DEEP = "+".join(["x"] * 2000)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"family": ["nasicon"]}, r"^family: unknown family \['nasicon'\]"),
        ({"targets": [["x"]]}, r"^targets: \['x'\] is not a target"),
        ({"exclude": 5}, r"^exclude: needs element symbols or group names, got 5"),
        ({"site": ["Zr"]}, r"^site: needs an element symbol, got \['Zr'\]"),
        ({"codoping": {"dopants": ["Ti"], "fractions": [0.05], "site": ["Zr"]}}, r"^codoping.site: needs an"),
        ({"dopants": ["Ru", 5]}, r"^dopants\[1\]: 5 is not an element symbol"),
        ({"fractions": {"start": 0.01, "stop": 1e308, "step": 1e-300}}, r"^fractions: more than 10,000,000"),
        (
            {"fractions": {"start": 0.01, "stop": 0.2, "step": "1e999"}},
            r"^fractions.step: '1e999' is not a fin",
        ),
        (
            {"ranking": {"max_pareto_fronts": 2**70}},
            r"^ranking: max_pareto_fronts: needs an integer in 1\.\.",
        ),
        ({"decimals": True}, r"^decimals: needs an integer in 2\.\.8"),
        ({"host": "\ud800"}, r"^host: a formula must be valid text"),
        (
            {"conditions": {**P2["conditions"], "cycles": [100]}},
            r"^conditions.cycles: \[100\] is not a number",
        ),
        ({"conditions": 7}, r"^conditions: needs a mapping"),
        ({"compensation": {"mode": "vacancy", "site": 3}}, r"^compensation.site: needs an element symbol"),
        ({"valences": {"Ru": "four"}}, r"^valences.Ru: 'four' is not a number"),
        ({"allow_peroxide": "yes"}, r"^allow_peroxide: needs true/false"),
        ({"max_candidates": 2**70}, r"^max_candidates: needs an integer in 1\.\."),
    ],
)
def test_wrong_types_and_sizes_get_one_line_naming_the_field(changes: dict[str, Any], message: str) -> None:
    """Issue 11 item 2: every one of these once raised a raw TypeError/OverflowError/RecursionError."""
    with pytest.raises(SpecError, match=message) as info:
        parse_spec(spec_with(**changes))
    assert "\n" not in str(info.value)


def test_a_deep_template_expression_is_refused_not_recursed() -> None:
    mapping = {**TEMPLATE, "template": {"formula": "Na{" + DEEP + "}{M}Cl{v}", "variables": {"x": [1]}}}
    with pytest.raises(SpecError, match=r"^template.formula: .*longer than"):
        parse_spec(mapping)
    nested = "(" * 2000 + "x" + ")" * 2000
    with pytest.raises(SpecError, match=r"^template.formula: "):
        parse_spec(
            {**TEMPLATE, "template": {"formula": "Na{" + nested + "}{M}Cl{v}", "variables": {"x": [1]}}}
        )


def test_the_spec_is_not_a_mapping() -> None:
    with pytest.raises(SpecError, match=r"^spec: needs a mapping, got list"):
        parse_spec(["name"])  # type: ignore[arg-type]
