"""The one campaign service both edges call (``nascreen campaign ...`` and ``/v1/campaigns``).

``new``: store a campaign (spec mapping + the text it came from + its SHA-256, objectives, acquisition,
seed, host). ``propose``: score the spec's candidates with the screening session the screen command and
the jobs use (``screening.session.run_session``), on the campaign's own model of a target when one is
registered (alias ``campaign-<name>``) and the champion otherwise, offset to this lab by the measured
rows (``models.campaign`` anchoring); from ``screening.campaign.MIN_LOCAL_ROWS`` measured rows of a target
on, the champion's prediction + a Gaussian process on this lab's residuals (``screening.campaign.local``),
then choose k with ``screening.campaign.propose_batch`` and record
the round (seed, spec fingerprint, model versions, proposals with their reasons). ``add_results``:
validate the rows (``service.campaigns.results``; a bad row is stored with its reason, the others are
taken), note what the models predicted for each beforehand, store them and refit when there are enough
rows (a new MLflow run and registered version with alias ``campaign-<name>``; ``@champion`` is never
moved). ``status``: rounds, best measured so far, predicted vs measured per round.

The service holds no global state: the store, where the models come from and the working directory
are given to it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.predictor import PredictorLike
from models.targets import TARGETS, TargetName
from screening.families import FAMILIES
from screening.schema import Field, column
from screening.spec import ScreeningSpec, SpecError
from screening.spec_forms import SpecForm
from service.campaigns import core
from service.campaigns.results import CheckedRow, check_results, composition_key
from service.campaigns.store import (
    CampaignRecord,
    CampaignStore,
    NewResult,
    RefitRecord,
    ResultRecord,
    RoundRecord,
    check_name,
)

__all__ = [
    "MAX_K",
    "AddResultsOutcome",
    "CampaignError",
    "CampaignService",
    "ModelSource",
    "round_seed",
    "spec_sha256",
]

logger = logging.getLogger(__name__)

#: A batch is what a lab synthesises in one go; more than this is a screen, not a campaign round.
MAX_K = 50
#: The MLflow experiment every proposal round is logged to (refits are runs of the target's experiment).
CAMPAIGN_EXPERIMENT = "nascreen-campaigns"
#: Candidates a campaign's space may hold (it is scored in full at every round, in this process).
MAX_CAMPAIGN_CANDIDATES = 200_000


class CampaignError(ValueError):
    """A campaign request that cannot be done as asked (bad spec, objective, k...), naming the input."""


def spec_sha256(text: str) -> str:
    """SHA-256 of the spec text as given (the file's bytes as UTF-8, or the JSON body)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def round_seed(campaign_seed: int, number: int) -> int:
    """The seed of round ``number``: fixed by the campaign's seed, different per round."""
    return int((campaign_seed * 1_000_003 + number) % (2**31 - 1))


# ------------------------------------------------------------------------------------------------ models
ChampionLoader = Callable[[TargetName], PredictorLike]
VersionLoader = Callable[[TargetName, str], PredictorLike]


@dataclass
class ModelSource:
    """Where a campaign's predictors come from: the champions (loaded once; the server passes the ones it
    holds) and campaign models by registered version (loaded once each)."""

    tracking_uri: str
    champions: dict[TargetName, PredictorLike] = field(default_factory=dict)
    _versions: dict[tuple[TargetName, str], PredictorLike] = field(default_factory=dict, repr=False)

    def champion(self, target: TargetName) -> PredictorLike:
        if target not in self.champions:
            from models.predictor import load_predictors

            self.champions.update(load_predictors([target], self.tracking_uri))
        return self.champions[target]

    def version(self, target: TargetName, campaign: str, version: str) -> PredictorLike:
        """A campaign's registered model (cached by version)."""
        key = (target, version)
        if key not in self._versions:
            self._versions[key] = core.load_campaign_predictor(target, campaign, version, self.tracking_uri)
        return self._versions[key]

    def predictors(
        self,
        targets: Sequence[TargetName],
        campaign_models: Mapping[str, RefitRecord],
        campaign: str = "",
        champion_for: Collection[TargetName] = (),
    ) -> dict[TargetName, PredictorLike]:
        """Per target: the campaign's refit when there is one (and the target is not in ``champion_for``),
        else the champion."""
        out: dict[TargetName, PredictorLike] = {}
        for t in targets:
            refit = None if t in champion_for else campaign_models.get(t.value)
            out[t] = self.version(t, campaign, refit.version) if refit is not None else self.champion(t)
        return out


@dataclass
class _LoadedFactory:
    """The session's scorer factory over predictors already loaded (campaign spaces are scored in this
    process; the chunk loop, store and ranking are the screen command's)."""

    spec: ScreeningSpec
    predictors: Mapping[TargetName, PredictorLike]

    def __call__(self) -> Any:
        from screening.runner import SpecChunkScorer

        return SpecChunkScorer(self.spec, {t: self.predictors[t] for t in self.spec.targets})


# ------------------------------------------------------------------------------------------------ outcomes
@dataclass(frozen=True)
class AddResultsOutcome:
    """What an upload did: every row with its outcome, notes, and the refits it triggered."""

    campaign: CampaignRecord
    batch: int
    rows: list[ResultRecord]
    notes: list[str]
    refits: list[RefitRecord]
    refit_skipped: dict[str, str]  # target -> why no refit (yet)

    @property
    def n_accepted(self) -> int:
        return sum(r.accepted for r in self.rows)

    @property
    def n_rejected(self) -> int:
        return sum(not r.accepted for r in self.rows)


# ------------------------------------------------------------------------------------------------ service
class CampaignService:
    """new / propose / add_results / status over one store, one model source and one working directory."""

    def __init__(
        self,
        store: CampaignStore,
        models: ModelSource,
        work_dir: Path,
        *,
        data_dir: Path | None = None,
        elements_of: Callable[[TargetName], frozenset[str]] | None = None,
        log_rounds: bool = True,
    ) -> None:
        self.log_rounds = log_rounds
        self.store = store
        self.models = models
        self.work_dir = work_dir
        self.data_dir = data_dir
        self._elements_of = elements_of

    # -- new ---------------------------------------------------------------------------------------
    def new(
        self,
        *,
        name: str,
        spec: Mapping[str, Any],
        spec_text: str | None = None,
        objectives: Sequence[Mapping[str, Any]] | None = None,
        acquisition: Mapping[str, Any] | None = None,
        seed: int = 0,
        reference: str | None = None,
    ) -> CampaignRecord:
        """Check and store a new campaign. Objectives default to the spec's ranking objectives (target,
        direction, weight, threshold); the reference to the spec's host."""
        try:
            check_name(name)
        except ValueError as exc:
            raise CampaignError(str(exc)) from None
        mapping = dict(spec)
        text = spec_text if spec_text is not None else json.dumps(mapping, sort_keys=True)
        parsed = self._parse_user_spec(mapping)
        objs = list(objectives) if objectives else _spec_objectives(parsed)
        typed_objectives = core.objectives(objs, parsed.family.targets)
        typed_acquisition = core.acquisition(acquisition or {})
        effective = self._open(mapping, [o.target for o in typed_objectives])
        _check_size(effective)
        return self.store.create(
            name=name,
            spec=mapping,
            spec_text=text,
            spec_sha256=spec_sha256(text),
            objectives=[core.objective_dict(o) for o in typed_objectives],
            acquisition=core.acquisition_dict(typed_acquisition),
            seed=int(seed),
            reference=reference or parsed.host,
        )

    def _parse_user_spec(self, mapping: Mapping[str, Any]) -> ScreeningSpec:
        from screening.session import open_spec

        try:
            return open_spec(mapping, elements_of=self._elements_of)
        except SpecError as exc:
            raise CampaignError(f"spec: {exc}") from None

    def _open(self, mapping: Mapping[str, Any], targets: Sequence[str]) -> ScreeningSpec:
        """The spec the campaign scores: the user's candidate space on the objective targets only, ranked
        by predicted value with no filter (the acquisition chooses; domain is the acquisition's rule)."""
        from screening.session import open_spec

        form = SpecForm.from_mapping(mapping)
        family_targets = FAMILIES[form.family].targets
        ordered = [t.value for t in family_targets if t.value in set(targets)]
        effective = {
            **dict(mapping),
            "targets": ordered,
            "ranking": {"mode": "value", "objectives": ordered, "in_domain_only": False},
        }
        try:
            return open_spec(effective, elements_of=self._elements_of)
        except SpecError as exc:
            raise CampaignError(f"spec: {exc}") from None

    def get(self, ref: str) -> CampaignRecord:
        return self.store.get(ref)

    def recent(self, limit: int = 100) -> list[CampaignRecord]:
        return self.store.recent(limit)

    def targets(self, record: CampaignRecord) -> list[TargetName]:
        return [TargetName(o["target"]) for o in record.objectives]

    # -- propose -----------------------------------------------------------------------------------
    def propose(self, ref: str, k: int) -> RoundRecord:
        """Score the campaign's space and record the next round of ``k`` proposals."""
        if not 1 <= int(k) <= MAX_K:
            raise CampaignError(f"k: {k!r}; a round proposes 1 to {MAX_K} candidates")
        record = self.store.get(ref)
        targets = self.targets(record)
        spec = self._open(record.spec, [t.value for t in targets])
        refits = self.store.latest_refits(record.id)
        measured = self.store.results(record.id, accepted_only=True)
        # from MIN_LOCAL_ROWS rows of a target on, its proposals are scored by the champion + the local GP
        # on this lab's residuals (the refit has seen those rows: its residuals there are in-sample)
        local = core.local_targets(list(spec.targets), measured)
        predictors = self.models.predictors(list(spec.targets), refits, record.name, champion_for=local)
        pending = self.store.begin_round(record.id, k=k, seed_of=lambda n: round_seed(record.seed, n))
        versions = {t.value: p.model_version for t, p in predictors.items()}
        try:
            proposals, counts, spec_hash = self._propose(record, spec, predictors, measured, pending)
            run_id = self._log_round(record, pending, spec_hash, versions, proposals, counts)
        except BaseException:
            self.store.abandon_round(record.id, pending.number)
            raise
        return self.store.finish_round(
            record.id,
            pending.number,
            spec_hash=spec_hash,
            model_versions=versions,
            proposals=proposals,
            counts=counts,
            n_measured=len(measured),
            mlflow_run_id=run_id,
        )

    def round_dir(self, record: CampaignRecord, number: int) -> Path:
        """Where round ``number``'s screen and proposal table are written (server-owned ids only)."""
        return self.work_dir / record.id / f"round-{number:03d}"

    def _log_round(
        self,
        record: CampaignRecord,
        pending: RoundRecord,
        spec_hash: str,
        versions: Mapping[str, str],
        proposals: Sequence[Mapping[str, Any]],
        counts: Mapping[str, Any],
    ) -> str:
        """The round as an MLflow run (experiment ``nascreen-campaigns``): what it used and proposed."""
        out_dir = self.round_dir(record, pending.number)
        out_dir.mkdir(parents=True, exist_ok=True)
        table = out_dir / "proposals.csv"
        pd.DataFrame(list(proposals)).to_csv(table, index=False)
        if not self.log_rounds:
            return ""
        from models.tracking import log_run

        return log_run(
            CAMPAIGN_EXPERIMENT,
            params={
                "campaign": record.name,
                "round": pending.number,
                "seed": pending.seed,
                "k": pending.k,
                "spec_hash": spec_hash,
                "spec_sha256": record.spec_sha256,
                **{f"model_version.{t}": v for t, v in versions.items()},
                **{f"acquisition.{k}": v for k, v in record.acquisition.items()},
            },
            metrics={k: float(v) for k, v in counts.items() if isinstance(v, int | float)},
            artifacts={"proposals": table},
            tags={"nascreen.campaign": record.name, "nascreen.campaign_id": record.id},
            tracking_uri=self.models.tracking_uri,
        )

    def _propose(
        self,
        record: CampaignRecord,
        spec: ScreeningSpec,
        predictors: Mapping[TargetName, PredictorLike],
        measured: Sequence[ResultRecord],
        pending: RoundRecord,
    ) -> tuple[list[dict[str, Any]], dict[str, Any], str]:
        from screening.session import run_session, summarise

        out_dir = self.round_dir(record, pending.number) / "screen"
        versions = {t.value: p.model_version for t, p in predictors.items()}
        result = run_session(
            spec,
            out_dir,
            factory=_LoadedFactory(spec, predictors),
            model_versions=versions,
            executor="local",
            resume=False,
        )
        counts = summarise(spec, result, 1).counts.as_dict()
        scored = core.anchor(result.ranked, predictors, measured)
        proposals = core.propose(
            scored,
            measured,
            record.objectives,
            record.acquisition,
            pending.k,
            seed=pending.seed,
            reference=record.reference,
            allow_peroxide=spec.allow_peroxide,
        )
        counts["measured_rows"] = len(measured)
        counts["proposed"] = len(proposals)
        return proposals, counts, result.manifest.spec_hash

    # -- add results -------------------------------------------------------------------------------
    def add_results(self, ref: str, frame: pd.DataFrame) -> AddResultsOutcome:
        """Validate and store an upload (every row, each accepted or with its reason), then refit the
        targets that have enough campaign rows. ``service.campaigns.results.ResultsError`` when the table
        as a whole is unusable (nothing is stored then)."""
        record = self.store.get(ref)
        targets = self.targets(record)
        spec = self._open(record.spec, [t.value for t in targets])
        checked, notes = check_results(frame, targets, _spec_conditions(spec))
        rounds = self.store.rounds(record.id)
        refits = self.store.latest_refits(record.id)
        good = [r for r in checked if r.accepted]
        predicted = self._predicted_before(good, rounds, targets, refits, record.name) if good else {}
        batch, stored = self.store.add_results(
            record.id,
            [
                NewResult(
                    row=r.row,
                    formula=r.formula,
                    conditions=r.conditions,
                    values=r.values,
                    accepted=r.accepted,
                    error=r.error,
                    round=predicted.get(r.row, (None, {}))[0],
                    predicted=predicted.get(r.row, (None, {}))[1],
                )
                for r in checked
            ],
        )
        new_refits, skipped = self._refit(record, targets) if good else ([], {})
        return AddResultsOutcome(record, batch, stored, notes, new_refits, skipped)

    def _predicted_before(
        self,
        rows: Sequence[CheckedRow],
        rounds: Sequence[RoundRecord],
        targets: Sequence[TargetName],
        refits: Mapping[str, RefitRecord],
        campaign: str,
    ) -> dict[int, tuple[int | None, dict[str, dict[str, Any]]]]:
        """Per accepted row: the latest round that proposed its composition and what that round
        predicted; rows no round proposed are predicted now, by the models the campaign uses now."""
        proposed: dict[tuple[Any, ...], tuple[int, dict[str, Any]]] = {}
        for rnd in rounds:
            for p in rnd.proposals:
                comp = _composition(p.get("formula"))
                if comp is not None:
                    proposed[composition_key(comp)] = (rnd.number, p)
        out: dict[int, tuple[int | None, dict[str, dict[str, Any]]]] = {}
        fresh: list[CheckedRow] = []
        for r in rows:
            hit = proposed.get(composition_key(r.composition)) if r.composition is not None else None
            if hit is None:
                fresh.append(r)
                continue
            number, proposal = hit
            out[r.row] = (number, _proposal_predictions(proposal, targets))
        if fresh:
            predictors = self.models.predictors(list(targets), refits, campaign)
            frame = pd.DataFrame([{"formula": r.formula, **r.conditions} for r in fresh])
            per_target = {t: predictors[t].predict_frame(frame) for t in targets}
            for i, r in enumerate(fresh):
                out[r.row] = (None, {t.value: _answer_row(per_target[t], i) for t in targets})
        return out

    def _refit(
        self, record: CampaignRecord, targets: Sequence[TargetName]
    ) -> tuple[list[RefitRecord], dict[str, str]]:
        measured = self.store.results(record.id, accepted_only=True)
        made: list[RefitRecord] = []
        skipped: dict[str, str] = {}
        for t in targets:
            rows = [r for r in measured if t.value in r.values]
            why = core.refit_blocker(t, rows)
            if why:
                skipped[t.value] = why
                continue
            outcome = core.refit(
                t,
                rows,
                campaign=record.name,
                tracking_uri=self.models.tracking_uri,
                data_dir=self.data_dir,
            )
            made.append(
                self.store.add_refit(
                    record.id,
                    target=t.value,
                    version=outcome.version,
                    run_id=outcome.run_id,
                    n_rows=len(rows),
                    metrics=outcome.metrics,
                )
            )
            logger.info("campaign %s: %s refit as version %s", record.name, t.value, outcome.version)
        return made, skipped


# ------------------------------------------------------------------------------------------------ helpers
def _spec_objectives(spec: ScreeningSpec) -> list[dict[str, Any]]:
    return [
        {"target": o.target, "direction": o.direction, "weight": o.weight, "threshold": o.threshold}
        for o in spec.ranking.objectives
    ]


def _spec_conditions(spec: ScreeningSpec) -> dict[str, Any]:
    c = spec.conditions
    values = {
        "cycles": c.cycles,
        "current_mA_g": c.current_mA_g,
        "voltage_low_V": c.voltage_low_V,
        "voltage_high_V": c.voltage_high_V,
        "working_ion": c.working_ion,
    }
    return {k: v for k, v in values.items() if v is not None}


def _check_size(spec: ScreeningSpec) -> None:
    from screening.candidates import count_candidates

    n = int(count_candidates(spec))
    if n > MAX_CAMPAIGN_CANDIDATES:
        raise CampaignError(
            f"spec: {n:,} candidates; a campaign scores its whole space every round, at most "
            f"{MAX_CAMPAIGN_CANDIDATES:,} (screen the space first and narrow the spec)"
        )


def _composition(formula: object) -> Any:
    from featurize.composition import CompositionError, parse_formula

    try:
        return parse_formula(formula)
    except CompositionError:
        return None


def _proposal_predictions(proposal: Mapping[str, Any], targets: Sequence[TargetName]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for t in targets:
        value = proposal.get(column(t, Field.PREDICTION))
        if value is None:
            continue
        out[t.value] = {
            "prediction": value,
            "lower_90": proposal.get(column(t, Field.LOWER_90)),
            "upper_90": proposal.get(column(t, Field.UPPER_90)),
            "model_version": proposal.get(column(t, Field.MODEL_VERSION)),
        }
    return out


def _answer_row(answers: pd.DataFrame, i: int) -> dict[str, Any]:
    row = answers.iloc[i]
    if row["error"]:
        return {"error": str(row["error"])}
    return {
        "prediction": _float(row["prediction"]),
        "lower_90": _float(row["lower_90"]),
        "upper_90": _float(row["upper_90"]),
        "model_version": str(row["model_version"]),
    }


def _float(value: object) -> float | None:
    out = float(value)  # type: ignore[arg-type]
    return out if np.isfinite(out) else None


def higher_is_better(target: str) -> bool:
    """The natural direction of a target (what "best measured" means when an objective says nothing)."""
    return TARGETS[TargetName(target)].higher_is_better
