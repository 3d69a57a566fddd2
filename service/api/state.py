"""What the app holds between requests: settings, the champion predictors (loaded once), the job store."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from models.predictor import PredictorLike
from models.targets import TargetName
from service.api.compute import SingleThreadedCompute
from service.api.settings import ApiSettings

if TYPE_CHECKING:
    from service.api.job_runner import JobManager
    from service.api.jobs import JobStore

logger = logging.getLogger(__name__)


@dataclass
class AppState:
    settings: ApiSettings
    predictors: dict[TargetName, PredictorLike] = field(default_factory=dict)
    missing: dict[TargetName, str] = field(default_factory=dict)
    jobs: JobStore | None = None
    manager: JobManager | None = None
    compute: SingleThreadedCompute | None = None


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
