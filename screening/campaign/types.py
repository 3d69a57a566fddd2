"""The typed objects of a closed-loop campaign: objectives, the acquisition settings, a lab measurement and
a proposed batch. Pure values, validated on construction (a bad value raises ValueError naming it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

import pandas as pd

from models.measurements import ConditionValue, Measurement, finite_number
from models.targets import TargetName

Direction = Literal["max", "min"]
AcquisitionKind = Literal["ei", "ucb", "p_better", "greedy"]
DiversityKind = Literal["kriging_believer", "local_penalisation", "none"]

__all__ = [
    "AcquisitionConfig",
    "AcquisitionKind",
    "CampaignObjective",
    "ConditionValue",
    "Direction",
    "DiversityKind",
    "ExcludeCode",
    "Measurement",
    "Proposals",
]


def _choice(value: object, kind: object, where: str) -> None:
    allowed = get_args(kind)
    if value not in allowed:
        raise ValueError(f"{where}: {value!r} (use one of {', '.join(allowed)})")


@dataclass(frozen=True)
class CampaignObjective:
    """One target the campaign optimises: its direction, its weight among several objectives, and an
    optional threshold the measured value must meet (>= for max, <= for min). The threshold is a soft
    constraint of the acquisition: a candidate's acquisition is multiplied by its probability of meeting
    it, ``Phi(sign (mean - threshold) / std)``."""

    target: TargetName
    direction: Direction
    weight: float = 1.0
    threshold: float | None = None

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "target", TargetName(self.target))
        except ValueError:
            valid = ", ".join(t.value for t in TargetName)
            raise ValueError(f"objective.target: unknown target {self.target!r} (use {valid})") from None
        _choice(self.direction, Direction, f"objective {self.target.value}: direction")
        weight = finite_number(self.weight, f"objective {self.target.value}: weight")
        if weight < 0:
            raise ValueError(f"objective {self.target.value}: weight must be >= 0, got {weight}")
        object.__setattr__(self, "weight", weight)
        if self.threshold is not None:
            thr = finite_number(self.threshold, f"objective {self.target.value}: threshold")
            object.__setattr__(self, "threshold", thr)

    @property
    def sign(self) -> float:
        """+1 when higher is better, -1 when lower is better (values times sign: higher is better)."""
        return 1.0 if self.direction == "max" else -1.0


@dataclass(frozen=True)
class AcquisitionConfig:
    """How the next batch is chosen.

    * ``kind``: ``ei`` expected improvement over the best measured so far (or the reference / host);
      ``ucb`` mean + kappa std; ``p_better`` probability of beating the best measured (or the reference);
      ``greedy`` the predicted mean alone (no uncertainty: the baseline a campaign must beat).
    * ``kappa``: UCB's exploration weight (std units), >= 0.
    * ``xi``: EI's margin (target units), >= 0.
    * ``diversity``: ``kriging_believer`` (after each pick, pretend its outcome is its predicted mean:
      the best-so-far moves to it and the std of candidates near it in composition space shrinks, then
      re-score), ``local_penalisation`` (multiply the acquisition of candidates near a pick by
      ``1 - rho``), or ``none`` (top k).
    * ``length_scale``: the composition-space correlation length (Hellinger distance of atomic fractions);
      None: twice the median nearest-neighbour distance among the candidates.
    * ``allow_out_of_domain``: propose candidates outside a model's applicability domain (exploration).
    """

    kind: AcquisitionKind = "ei"
    kappa: float = 2.0
    diversity: DiversityKind = "kriging_believer"
    allow_out_of_domain: bool = False
    xi: float = 0.0
    length_scale: float | None = None

    def __post_init__(self) -> None:
        _choice(self.kind, AcquisitionKind, "acquisition.kind")
        _choice(self.diversity, DiversityKind, "acquisition.diversity")
        for name in ("kappa", "xi"):
            value = finite_number(getattr(self, name), f"acquisition.{name}")
            if value < 0:
                raise ValueError(f"acquisition.{name}: must be >= 0, got {value}")
            object.__setattr__(self, name, value)
        if not isinstance(self.allow_out_of_domain, bool):
            raise ValueError(
                f"acquisition.allow_out_of_domain: needs true/false, got {self.allow_out_of_domain!r}"
            )
        if self.length_scale is not None:
            ls = finite_number(self.length_scale, "acquisition.length_scale")
            if ls <= 0:
                raise ValueError(f"acquisition.length_scale: must be > 0, got {ls}")
            object.__setattr__(self, "length_scale", ls)

    def describe(self) -> str:
        """One line naming the acquisition and its parameters."""
        what = {
            "ei": f"expected improvement over the best measured (xi={self.xi:g})",
            "ucb": f"UCB mean + {self.kappa:g} std",
            "p_better": "probability of beating the best measured",
            "greedy": "predicted mean only",
        }[self.kind]
        return f"{what}; diversity {self.diversity}" + (
            "; out-of-domain allowed" if self.allow_out_of_domain else "; in-domain only"
        )


class ExcludeCode:
    """Why a candidate was not proposable (``code`` column of ``Proposals.excluded``)."""

    MEASURED = "measured"
    OUT_OF_DOMAIN = "out_of_domain"
    NOT_NEUTRAL = "not_neutral"
    NO_PREDICTION = "no_prediction"


@dataclass(frozen=True)
class Proposals:
    """A proposed batch.

    ``table``: one row per proposed candidate, best first: ``rank``, ``formula`` (+ the candidate's label
    columns when the scored table had them: candidate_id, host, site, dopant, fraction, ...), per target
    ``<t>_prediction``, ``<t>_std``, ``<t>_lower_90``, ``<t>_upper_90``, ``<t>_in_domain``, then
    ``acquisition`` (the value it was picked at, after diversity), ``acquisition_first`` (its value before
    any pick of this batch), ``scored_by`` when the score table names its model
    (``screening.campaign.local_scores``) and ``reason`` (a sentence: predicted value, std, acquisition, and
    which model scored it).
    ``excluded``: ``formula``, ``code`` (``ExcludeCode``), ``reason``, one row per candidate left out.
    ``described``: the acquisition and baselines used, as text."""

    table: pd.DataFrame
    excluded: pd.DataFrame
    described: str
    baselines: Mapping[str, float]
    seed: int
