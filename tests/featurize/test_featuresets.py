"""Feature sets: registry, matminer labels, golden values, invariances, batch/padding/chunk independence."""

from __future__ import annotations

import numpy as np
import pytest

import featurize.sets.base as base
from featurize import reference
from featurize.composition import parse_formula
from featurize.featuresets import FEATURE_SET_NAMES, get_feature_set, resolve_name
from featurize.transformer import featurize_formulas

SIMPLE_SETS = ["magpie_v1", "stoichiometry_v1", "valence_orbital_v1"]
MIXED = [
    "Fe2O3",
    "NaCl",
    "Na3Zr2Si2PO12",
    "Na0.67Mn0.67Ni0.33O2",
    "Na0.6Li0.2Mn0.7Ru0.1O2",
    "Na2HfCl6",
    "Cu",
    "NaN",
    "Na0.72Li0.24Mn0.76Ti0.1Fe0.02Mg0.02O2",
]


def comps(formulas: list[str]) -> list:
    return [parse_formula(f) for f in formulas]


def test_registry_names_and_aliases() -> None:
    assert set(FEATURE_SET_NAMES) == {
        "magpie_v1",
        "stoichiometry_v1",
        "valence_orbital_v1",
        "oxidation_v1",
        "composite_v1",
        "oxidation_v2",
        "composite_v2",
    }
    assert resolve_name("magpie") == "magpie_v1"
    assert resolve_name("oxidation") == "oxidation_v2" and resolve_name("composite") == "composite_v2"
    assert resolve_name("Magpie_V1") == "magpie_v1"
    assert get_feature_set("magpie") is get_feature_set("magpie_v1")
    assert get_feature_set("magpie_v1").name == "magpie_v1"
    assert get_feature_set("magpie_v1").version == 1
    with pytest.raises(ValueError, match="unknown feature set 'magpie_v9'"):
        get_feature_set("magpie_v9")


@pytest.mark.parametrize(
    ("name", "kind", "n"),
    [
        ("magpie_v1", "magpie", 132),
        ("stoichiometry_v1", "stoichiometry", 6),
        ("valence_orbital_v1", "valence_orbital", 8),
    ],
)
def test_labels_are_matminers(name: str, kind: str, n: int) -> None:
    fs = get_feature_set(name)
    assert fs.feature_labels() == reference.feature_labels(kind)
    assert len(fs.feature_labels()) == n
    assert fs.citations()


def test_magpie_labels_spelled_as_matminer() -> None:
    labels = get_feature_set("magpie_v1").feature_labels()
    assert labels[:6] == [
        f"MagpieData {s} Number" for s in ("minimum", "maximum", "range", "mean", "avg_dev", "mode")
    ]
    assert "MagpieData mean Number" in labels


def test_golden_fe2o3_mean_number() -> None:
    fs = get_feature_set("magpie_v1")
    x = fs.compute(comps(["Fe2O3"]))[0]
    labels = fs.feature_labels()
    assert x[labels.index("MagpieData mean Number")] == pytest.approx(15.2, rel=1e-12)
    assert x[labels.index("MagpieData minimum Number")] == 8
    assert x[labels.index("MagpieData maximum Number")] == 26
    assert x[labels.index("MagpieData range Number")] == 18
    assert x[labels.index("MagpieData mode Number")] == 8  # O has the larger amount
    assert x[labels.index("MagpieData avg_dev Number")] == pytest.approx(8.64, rel=1e-12)


def test_mode_tie_takes_the_minimum_like_matminer() -> None:
    fs = get_feature_set("magpie_v1")
    labels = fs.feature_labels()
    x = fs.compute(comps(["NaCl"]))[0]
    assert x[labels.index("MagpieData mode Number")] == 11  # Na (11) and Cl (17) tie -> minimum
    ref = fs.compute_reference(comps(["NaCl"]))[0]
    assert ref[labels.index("MagpieData mode Number")] == 11


@pytest.mark.parametrize("name", SIMPLE_SETS)
def test_scale_invariance_feo(name: str) -> None:
    fs = get_feature_set(name)
    x = fs.compute(comps(["FeO", "Fe0.5O0.5", "Fe2O2"]))
    np.testing.assert_array_equal(x[0], x[1])
    np.testing.assert_array_equal(x[0], x[2])


def test_stoichiometry_golden() -> None:
    x = get_feature_set("stoichiometry_v1").compute(comps(["Fe2O3", "Cu"]))
    np.testing.assert_allclose(
        x[0],
        [
            2,
            np.sqrt(0.4**2 + 0.6**2),
            (0.4**3 + 0.6**3) ** (1 / 3),
            (0.4**5 + 0.6**5) ** 0.2,
            (0.4**7 + 0.6**7) ** (1 / 7),
            (0.4**10 + 0.6**10) ** 0.1,
        ],
        rtol=1e-14,
    )
    np.testing.assert_array_equal(x[1], [1, 1, 1, 1, 1, 1])


def test_valence_orbital_golden_nacl() -> None:
    # Na: 1 s; Cl: 2 s + 5 p. avg s = 1.5, avg p = 2.5, total 4 -> frac s 0.375, frac p 0.625.
    x = get_feature_set("valence_orbital_v1").compute(comps(["NaCl"]))[0]
    np.testing.assert_allclose(x, [1.5, 2.5, 0, 0, 0.375, 0.625, 0, 0], rtol=1e-14)


@pytest.mark.parametrize("name", SIMPLE_SETS)
def test_row_independent_of_batch_and_padding(name: str) -> None:
    fs = get_feature_set(name)
    together = fs.compute(comps(MIXED))
    alone = np.vstack([fs.compute(comps([f])) for f in MIXED])
    np.testing.assert_array_equal(together, alone)


@pytest.mark.parametrize("name", SIMPLE_SETS)
def test_chunking_does_not_change_results(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fs = get_feature_set(name)
    batch = comps(MIXED * 3)
    whole = fs.compute(batch)
    monkeypatch.setattr(base, "CHUNK", 4)
    np.testing.assert_array_equal(fs.compute(batch), whole)


@pytest.mark.parametrize("name", FEATURE_SET_NAMES)
def test_empty_batch(name: str) -> None:
    fs = get_feature_set(name)
    assert fs.compute([]).shape == (0, len(fs.feature_labels()))


def test_oxidation_labels_are_matminers() -> None:
    labels = get_feature_set("oxidation_v1").feature_labels()
    assert labels[:3] == reference.feature_labels("ion_property")
    assert labels[3:] == reference.feature_labels("oxidation_states")
    composite = get_feature_set("composite_v1").feature_labels()
    assert len(composite) == 132 + 6 + 8 + 7 == len(set(composite))


def test_oxidation_golden_values() -> None:
    fs = get_feature_set("oxidation_v1")
    x = dict(zip(fs.feature_labels(), fs.compute(comps(["Fe3O4"]))[0], strict=True))
    assert x["compound possible"] == 1.0
    assert x["minimum oxidation state"] == -2
    assert x["maximum oxidation state"] == pytest.approx(8 / 3)  # mixed-valence Fe averaged
    assert x["range oxidation state"] == pytest.approx(2 + 8 / 3)
    # matminer std_dev: beta = sum(w) / (sum(w)^2 - sum(w^2)) with the reduced amounts (3, 4)
    mean = (3 * 8 / 3 + 4 * -2) / 7
    beta = 7 / (49 - 25)
    assert x["std_dev oxidation state"] == pytest.approx(
        np.sqrt(beta * (3 * (8 / 3 - mean) ** 2 + 4 * (-2 - mean) ** 2))
    )
    d_x = 1.83 - 3.44  # pymatgen Pauling electronegativities of Fe and O
    assert x["max ionic char"] == pytest.approx(1 - np.exp(-0.25 * d_x**2))
    assert x["avg ionic char"] == pytest.approx(3 / 7 * 4 / 7 * (1 - np.exp(-0.25 * d_x**2)))


def test_oxidation_single_element_and_unbalanced() -> None:
    fs = get_feature_set("oxidation_v1")
    cu, bad = fs.compute(comps(["Cu", "NaMg"]))
    np.testing.assert_array_equal(cu, [1, 0, 0, 0, 0, 0, 0])  # matminer: an element is "possible", state 0
    assert bad[0] == 0.0  # two cations cannot balance
    assert np.isfinite(bad).all()  # closest assignment, flagged by compound possible = 0, never NaN


def test_oxidation_matches_single_assignment() -> None:
    from featurize.oxidation import assign_oxidation_states

    fs = get_feature_set("oxidation_v1")
    formulas = ["Na0.67Mn0.67Ni0.33O2", "Na3Zr2Si2PO12", "NaFe0.5Mn0.5O2", "Na2HfCl6"]
    x = fs.compute(comps(formulas))
    for row, formula in zip(x, formulas, strict=True):
        a = assign_oxidation_states(parse_formula(formula))
        states = list(a.states.values())
        assert row[0] == float(a.balanced)
        assert row[3] == pytest.approx(min(states)) and row[4] == pytest.approx(max(states))


@pytest.mark.parametrize("name", FEATURE_SET_NAMES)
def test_labels_are_the_feature_labels_built_once(name: str) -> None:
    fs = get_feature_set(name)
    assert fs.labels() == tuple(fs.feature_labels())
    assert fs.labels() is fs.labels()
    assert featurize_formulas(["NaCl"], name).feature_names == fs.feature_labels()
