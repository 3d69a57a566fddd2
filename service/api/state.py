"""What the app holds between requests: settings, the champion predictors (loaded once), the job store."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from models.predictor import PredictorLike
from models.targets import TargetName
from service.api.compute import SingleThreadedCompute
from service.api.job_manager import JobManager
from service.api.job_store import JobStore
from service.api.settings import ApiSettings
from service.campaigns.service import CampaignService

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AppState:
    """Everything a request may use, built whole by ``build_state`` before the first request."""

    settings: ApiSettings
    predictors: dict[TargetName, PredictorLike]
    missing: dict[TargetName, str]  # target -> why no champion is loaded
    jobs: JobStore
    manager: JobManager
    compute: SingleThreadedCompute
    campaigns: CampaignService

    def close(self) -> None:
        """Stop the job manager (running jobs stop at their next chunk), the compute pool, the stores."""
        self.manager.shutdown()
        self.compute.shutdown()
        self.jobs.close()
        self.campaigns.store.close()


def build_state(
    settings: ApiSettings,
    *,
    recover_jobs: bool = True,
    predictors: Mapping[TargetName, PredictorLike] | None = None,
) -> AppState:
    """Load the champions, open the job store (``recover_jobs``: marking jobs a previous process left
    running as interrupted; not in the workers of a multi-process server) and start the job manager.

    ``predictors``: models already in hand (tests that exercise HTTP behaviour with small fitted models)
    instead of the champions of the tracking store; a configured target without one is reported missing."""
    if predictors is None:
        loaded, missing = load_champions(settings)
    else:
        loaded = {t: predictors[t] for t in settings.targets if t in predictors}
        missing = {t: "no model was given for this target" for t in settings.targets if t not in predictors}
    compute = SingleThreadedCompute()
    store = JobStore(settings.resolved_jobs_db)
    interrupted = store.mark_interrupted() if recover_jobs else []
    if interrupted:
        logger.warning("marked %d job(s) from a previous run as interrupted", len(interrupted))
    manager = JobManager(store, settings, loaded, compute)
    return AppState(
        settings, loaded, missing, store, manager, compute, open_campaigns(settings, loaded, recover_jobs)
    )


def open_campaigns(
    settings: ApiSettings, loaded: dict[TargetName, PredictorLike], recover: bool
) -> CampaignService:
    """The campaign service on the store beside the job store, scoring with the champions loaded here
    (``recover``: forget rounds a stopped server left half-proposed)."""
    from models.predictor import training_elements
    from service.campaigns.service import ModelSource
    from service.campaigns.store import CampaignStore

    store = CampaignStore(settings.resolved_campaigns_db)
    if recover and (n := store.abandon_running()):
        logger.warning("forgot %d campaign round(s) a previous run left unfinished", n)
    models = ModelSource(settings.resolved_tracking_uri, champions=dict(loaded))
    return CampaignService(
        store,
        models,
        settings.resolved_campaigns_db.parent / "campaigns",
        data_dir=settings.resolved_data_dir,
        elements_of=lambda t: training_elements(models.champion(t)),
    )


def load_champions(settings: ApiSettings) -> tuple[dict[TargetName, PredictorLike], dict[TargetName, str]]:
    """Load each configured target's champion once; a target without one is reported, not fatal."""
    from models.predictor import load_predictors
    from models.tracking import NoChampionError

    loaded: dict[TargetName, PredictorLike] = {}
    missing: dict[TargetName, str] = {}
    uri = settings.resolved_tracking_uri
    for target in settings.targets:
        try:
            loaded.update(load_predictors([target], uri))
        except NoChampionError as exc:
            missing[target] = str(exc)
        except (OSError, ValueError, LookupError) as exc:  # a broken store/artifact for one target only
            logger.exception("could not load the champion model for %s", target.value)
            missing[target] = f"could not load the champion model: {exc}"
    for target, predictor in loaded.items():
        logger.info("loaded %s champion version %s", target.value, predictor.model_version)
    return loaded, missing
