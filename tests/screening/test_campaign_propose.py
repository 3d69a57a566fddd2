"""The campaign core's proposal rule on hand-built score tables: acquisition values against hand-computed
numbers, exclusions with their reasons, batch diversity and determinism by seed."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from models.targets import TargetName
from screening.campaign import AcquisitionConfig, CampaignObjective, Measurement, propose_batch
from screening.campaign.propose import acquisition_values
from screening.schema import Field, column

T = TargetName.CAPACITY_RETENTION


def _scored(rows: list[tuple[str, float, float, bool]]) -> pd.DataFrame:
    """A score table in the screening schema: formula, prediction, std, 90% interval, domain flag."""
    formula, mean, std, dom = zip(*rows, strict=True)
    m, s = np.array(mean), np.array(std)
    return pd.DataFrame(
        {
            "formula": list(formula),
            column(T, Field.PREDICTION): m,
            column(T, Field.STD): s,
            column(T, Field.LOWER_90): m - 1.645 * s,
            column(T, Field.UPPER_90): m + 1.645 * s,
            column(T, Field.IN_DOMAIN): list(dom),
        }
    )


def _p2_space() -> pd.DataFrame:
    """Ru and Ti on the Mn site of Na0.6Li0.2Mn0.8O2 at six fractions: Ru a little better, all certain
    alike, so a batch without diversity is all Ru neighbours."""
    rows = []
    for dopant, level in (("Ru", 80.0), ("Ti", 78.0)):
        for x in (0.025, 0.05, 0.075, 0.1, 0.125, 0.15):
            mn = round(0.8 - x, 4)
            rows.append((f"Na0.6Li0.2Mn{mn}{dopant}{x}O2", level + 10 * x, 5.0, True))
    return _scored(rows)


def test_acquisition_values_equal_hand_computed_numbers() -> None:
    mean, std, best = np.array([82.0, 80.0]), np.array([4.0, 0.0]), 80.0
    ei = acquisition_values("ei", mean, std, best, kappa=2.0, xi=0.0)
    z = 2.0 / 4.0
    pdf = math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    cdf = 0.5 * (1 + math.erf(z / math.sqrt(2)))
    assert ei[0] == pytest.approx(2.0 * cdf + 4.0 * pdf, rel=1e-12)
    assert ei[1] == 0.0  # no spread, no improvement
    assert acquisition_values("ucb", mean, std, best, kappa=2.0, xi=0.0).tolist() == [90.0, 80.0]
    assert acquisition_values("p_better", mean, std, best, 2.0, 0.0)[0] == pytest.approx(cdf, rel=1e-12)
    assert acquisition_values("greedy", mean, std, best, 2.0, 0.0).tolist() == [82.0, 80.0]
    with pytest.raises(ValueError, match="acquisition kind"):
        acquisition_values("thompson", mean, std, best, 2.0, 0.0)


def test_measured_out_of_domain_and_non_neutral_rows_are_excluded_with_reasons() -> None:
    scored = _scored(
        [
            ("Na0.6Li0.2Mn0.7Ru0.1O2", 85.0, 5.0, True),  # measured below
            ("Na0.6Li0.2Mn0.7Ti0.1O2", 84.0, 5.0, False),  # out of domain
            ("Na0.6Li0.2Mn0.8O3", 83.0, 5.0, True),  # not charge-neutral (Mn would be +5.5)
            ("Na0.6Li0.2Mn0.75Ti0.05O2", 80.0, 5.0, True),
            ("Na0.6Li0.2Mn0.75Ru0.05O2", 81.0, 5.0, True),
        ]
    )
    measured = [Measurement(formula="Na0.6Li0.2Mn0.7Ru0.1O2", target=T, value=79.0, round=1)]
    out = propose_batch(
        scored, measured, [CampaignObjective(target=T, direction="max")], AcquisitionConfig(), 4, seed=0
    )
    assert set(out.table["formula"]) == {"Na0.6Li0.2Mn0.75Ti0.05O2", "Na0.6Li0.2Mn0.75Ru0.05O2"}
    reasons = dict(zip(out.excluded["formula"], out.excluded["code"], strict=True))
    assert reasons["Na0.6Li0.2Mn0.7Ru0.1O2"] == "measured"
    assert reasons["Na0.6Li0.2Mn0.7Ti0.1O2"] == "out_of_domain"
    assert reasons["Na0.6Li0.2Mn0.8O3"] == "not_neutral"
    assert (out.table["reason"].str.len() > 0).all()
    # exploring outside the domain is the user's choice, and then the out-of-domain row may be proposed
    explore = AcquisitionConfig(allow_out_of_domain=True)
    out = propose_batch(scored, measured, [CampaignObjective(target=T, direction="max")], explore, 4, seed=0)
    assert "Na0.6Li0.2Mn0.7Ti0.1O2" in set(out.table["formula"])


def test_a_material_measured_under_another_protocol_is_measured_another_phase_is_not() -> None:
    from screening.campaign import measured_mask

    frame = pd.DataFrame(
        {
            "formula": ["NaNi0.5Mn0.5O2", "NaTaCl6", "NaTaCl6", "Na3PS4"],
            "cycles": [200.0, np.nan, np.nan, np.nan],
            "phase": ["unknown", "crystalline", "amorphous", "glass"],
        }
    )
    from featurize.composition import parse_formulas

    comps = parse_formulas(frame["formula"].tolist())
    measured = [
        # the same cathode cycled 100 times, not 200: already made and measured
        Measurement(formula="NaNi0.5Mn0.5O2", target=T, value=70.0, conditions={"cycles": 100.0}),
        Measurement(
            formula="NaTaCl6",
            target=TargetName.IONIC_CONDUCTIVITY,
            value=-2.4,
            conditions={"phase": "amorphous"},
        ),
    ]
    assert measured_mask(frame, comps, measured).tolist() == [True, False, True, False]


def test_diversity_spreads_a_batch_that_greedy_packs_onto_one_dopant() -> None:
    scored = _p2_space()
    objective = [CampaignObjective(target=T, direction="max")]
    greedy = propose_batch(
        scored, [], objective, AcquisitionConfig(kind="greedy", diversity="none"), 4, seed=0
    )
    assert all("Ru" in f for f in greedy.table["formula"])  # the four best means: all Ru
    diverse = propose_batch(
        scored, [], objective, AcquisitionConfig(kind="ucb", diversity="local_penalisation"), 4, seed=0
    )
    assert any("Ti" in f for f in diverse.table["formula"]), diverse.table["formula"].tolist()
    assert diverse.table["formula"].is_unique


def test_the_same_inputs_and_seed_give_the_same_batch() -> None:
    scored = _p2_space()
    objective = [CampaignObjective(target=T, direction="max")]
    config = AcquisitionConfig(kind="ei", diversity="kriging_believer")
    a = propose_batch(scored, [], objective, config, 5, seed=3)
    b = propose_batch(scored.sample(frac=1.0, random_state=1), [], objective, config, 5, seed=3)
    assert a.table["formula"].tolist() == b.table["formula"].tolist()
    assert len(a.table) == 5 and a.table["rank"].tolist() == [1, 2, 3, 4, 5]
