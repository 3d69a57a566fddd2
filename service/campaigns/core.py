"""The one place the campaign edges talk to the pure campaign core (``screening.campaign``: objectives,
acquisition, ``propose_batch``; ``models.campaign``: lab anchoring, refit rows, the refit itself). Stored
campaigns keep plain mappings (JSON in SQLite); they are turned into the core's typed objects here, and
the core's answers into JSON-safe rows here, so a change of the core's shape is one module to follow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd

from models.predictor import Predictor, PredictorLike
from models.targets import TARGETS, TargetName
from service.campaigns.store import ResultRecord

__all__ = [
    "RefitOutcome",
    "acquisition",
    "acquisition_dict",
    "anchor",
    "load_campaign_predictor",
    "local_targets",
    "measurements",
    "objective_dict",
    "objectives",
    "propose",
    "refit",
    "refit_blocker",
]


def _error(exc: Exception) -> Exception:
    from service.campaigns.service import CampaignError

    return CampaignError(str(exc))


# -------------------------------------------------------------------------------------- objectives
def objectives(items: Sequence[Mapping[str, Any]], family_targets: Sequence[TargetName]) -> list[Any]:
    """Typed ``CampaignObjective`` per mapping (direction defaults to the target's natural one); every
    target must be one the spec's family is scored on."""
    from screening.campaign import CampaignObjective

    if not items:
        raise _error(ValueError("objectives: give at least one target"))
    out = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        try:
            target = TargetName(str(item.get("target")))
        except ValueError:
            known = ", ".join(t.value for t in family_targets)
            raise _error(
                ValueError(f"objectives[{i}]: {item.get('target')!r} is not a target ({known})")
            ) from None
        if target not in family_targets:
            known = ", ".join(t.value for t in family_targets)
            raise _error(
                ValueError(f"objectives[{i}]: {target.value} is not scored for this family ({known})")
            )
        if target.value in seen:
            raise _error(ValueError(f"objectives[{i}]: {target.value} is given twice"))
        seen.add(target.value)
        direction = item.get("direction") or ("max" if TARGETS[target].higher_is_better else "min")
        try:
            threshold = item.get("threshold")
            out.append(
                CampaignObjective(
                    target=target,
                    direction=cast(Any, direction),  # the core validates it (ValueError names the field)
                    weight=float(item.get("weight", 1.0) or 1.0),
                    threshold=None if threshold is None else float(threshold),
                )
            )
        except (TypeError, ValueError) as exc:
            raise _error(ValueError(f"objectives[{i}]: {exc}")) from None
    return out


def objective_dict(o: Any) -> dict[str, Any]:
    """A ``CampaignObjective`` as the store keeps it."""
    return {
        "target": TargetName(o.target).value,
        "direction": str(o.direction),
        "weight": float(o.weight),
        "threshold": None if o.threshold is None else float(o.threshold),
    }


def _typed_objectives(items: Sequence[Mapping[str, Any]]) -> list[Any]:
    return objectives(items, list(TargetName))


# -------------------------------------------------------------------------------------- acquisition
#: Names the edges accept for the core's fields (the CLI says --explore, the core allow_out_of_domain).
_ACQ_ALIASES = {"explore": "allow_out_of_domain", "acquisition": "kind"}


def acquisition(settings: Mapping[str, Any]) -> Any:
    """Typed ``AcquisitionConfig`` from a mapping (unknown keys are refused with the known ones)."""
    import dataclasses

    from screening.campaign import AcquisitionConfig

    values = {_ACQ_ALIASES.get(k, k): v for k, v in settings.items()}
    known = {f.name for f in dataclasses.fields(AcquisitionConfig)}
    extra = sorted(set(values) - known)
    if extra:
        raise _error(
            ValueError(f"acquisition: unknown setting(s) {extra} (known: {', '.join(sorted(known))})")
        )
    try:
        return AcquisitionConfig(**values)
    except (TypeError, ValueError) as exc:
        raise _error(ValueError(f"acquisition: {exc}")) from None


def acquisition_dict(config: Any) -> dict[str, Any]:
    """An ``AcquisitionConfig`` as the store keeps it."""
    import dataclasses

    return {k: _plain(v) for k, v in dataclasses.asdict(config).items()}


def _plain(value: Any) -> Any:
    if hasattr(value, "value") and isinstance(value.value, str):
        return value.value
    if isinstance(value, np.generic):
        return value.item()
    return value


# -------------------------------------------------------------------------------------- measurements
def measurements(results: Sequence[ResultRecord]) -> list[Any]:
    """One ``Measurement`` per (accepted row, target it measured), in upload order."""
    from screening.campaign import Measurement

    out = []
    for r in results:
        if not r.accepted:
            continue
        for target, value in r.values.items():
            out.append(
                Measurement(
                    formula=r.formula,
                    target=TargetName(target),
                    value=float(value),
                    conditions={k: v for k, v in r.conditions.items() if v is not None},
                    round=r.round if r.round is not None else 0,
                )
            )
    return out


# -------------------------------------------------------------------------------------- anchoring
def anchor(
    scored: pd.DataFrame, predictors: Mapping[TargetName, PredictorLike], measured: Sequence[ResultRecord]
) -> pd.DataFrame:
    """The scored table the acquisition reads (``screening.campaign.local_scores``): per target, from
    ``MIN_LOCAL_ROWS`` measured rows on, the model's prediction + a Gaussian process on this lab's
    residuals (its posterior mean and std); below that, the predictions offset to this lab (the shrunken
    lab offset of ``models.campaign``). Column ``scored_by`` names the model of each target."""
    from screening.campaign import local_scores

    return local_scores(scored, predictors, measurements(measured))


def local_targets(targets: Sequence[TargetName], measured: Sequence[ResultRecord]) -> set[TargetName]:
    """The targets with enough measured rows for the local GP (``MIN_LOCAL_ROWS``): their proposals are
    scored by the champion + the GP, since the GP learns from out-of-sample residuals and a campaign
    refit has seen the rows."""
    from screening.campaign import MIN_LOCAL_ROWS

    ms = measurements(measured)
    return {t for t in targets if sum(m.target == t for m in ms) >= MIN_LOCAL_ROWS}


# -------------------------------------------------------------------------------------- proposals
def _reference_values(
    scored: pd.DataFrame, measured: Sequence[Any], reference: str | None, targets: Sequence[TargetName]
) -> dict[TargetName, float] | None:
    """Per target: the reference's measured value when the lab measured it, else its (anchored)
    prediction from the scored table (the host row), else nothing."""
    from service.campaigns.results import composition_key
    from service.campaigns.service import _composition

    if reference is None:
        return None
    ref = _composition(reference)
    out: dict[TargetName, float] = {}
    for t in targets:
        hits = [
            m.value
            for m in measured
            if m.target == t
            and ref is not None
            and (c := _composition(m.formula)) is not None
            and composition_key(c) == composition_key(ref)
        ]
        if hits:
            out[t] = float(np.mean(hits))
            continue
        col = f"{t.value}_prediction"
        if "is_host" in scored.columns and col in scored.columns:
            host = scored.loc[scored["is_host"].astype(bool), col].dropna()
            if not host.empty:
                out[t] = float(host.iloc[0])
    return out or None


def propose(
    scored: pd.DataFrame,
    measured: Sequence[ResultRecord],
    objective_items: Sequence[Mapping[str, Any]],
    acquisition_settings: Mapping[str, Any],
    k: int,
    *,
    seed: int,
    reference: str | None,
    allow_peroxide: bool = False,
) -> list[dict[str, Any]]:
    """``propose_batch`` on the stored settings; the proposals as JSON-safe rows, best first."""
    objs = _typed_objectives(objective_items)
    config = acquisition(acquisition_settings)
    from screening.campaign import propose_batch

    ms = measurements(measured)
    targets = [TargetName(o.target) for o in objs]
    ref = _reference_values(scored, ms, reference, targets)
    proposals = propose_batch(
        scored, ms, objs, config, k, seed=seed, reference=ref, allow_peroxide=allow_peroxide
    )
    return _records(proposals.table)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for row in frame.to_dict(orient="records"):
        rec: dict[str, Any] = {}
        for key, value in row.items():
            if isinstance(value, np.generic):
                value = value.item()
            if (isinstance(value, float) and not math.isfinite(value)) or value is pd.NA or value is pd.NaT:
                value = None
            rec[str(key)] = value
        out.append(rec)
    return out


# -------------------------------------------------------------------------------------- refit
@dataclass(frozen=True)
class RefitOutcome:
    """A registered campaign model."""

    version: str
    run_id: str
    metrics: dict[str, float]


def refit_blocker(target: TargetName, rows: Sequence[ResultRecord]) -> str:
    """Why ``target`` is not refitted on these rows yet ("" when it is)."""
    from models.campaign import MIN_REFIT_ROWS

    if len(rows) < MIN_REFIT_ROWS:
        return (
            f"{len(rows)} campaign rows; a refit needs at least {MIN_REFIT_ROWS} (until then the lab offset "
            "anchors the predictions)"
        )
    return ""


def refit(
    target: TargetName,
    rows: Sequence[ResultRecord],
    *,
    campaign: str,
    tracking_uri: str,
    data_dir: Any,
) -> RefitOutcome:
    """Refit the champion's pipeline on the curated data + the campaign's rows; register the new version
    with alias ``campaign-<name>`` (``@champion`` stays where it is)."""
    from models.campaign import refit_and_register

    ms = [m for m in measurements(rows) if m.target == target]
    result = refit_and_register(target, ms, campaign=campaign, tracking_uri=tracking_uri, data_dir=data_dir)
    return RefitOutcome(
        version=str(result.version),
        run_id=str(result.run_id),
        metrics=dict(getattr(result, "metrics", {}) or {}),
    )


def load_campaign_predictor(
    target: TargetName, campaign: str, version: str, tracking_uri: str
) -> PredictorLike:
    """The campaign's registered model of ``target`` (alias ``campaign-<name>``) as a predictor; a version
    other than the one the store recorded (the alias moved since) is an error, not a silent swap."""
    from models.campaign import load_campaign_model

    model, loaded = load_campaign_model(target, campaign, tracking_uri)
    if str(loaded) != str(version):
        raise RuntimeError(
            f"{target.value}: alias campaign-{campaign} points at version {loaded}, the campaign recorded "
            f"version {version}"
        )
    return Predictor(target=target, model=model, model_version=str(loaded))
