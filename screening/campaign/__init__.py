"""Closed-loop campaigns, the pure core: typed objectives, acquisition settings, lab measurements, and the
proposal of the next batch (``propose_batch``). No IO, no MLflow, no Ray: the store, the orchestration
(anchoring and refits with ``models.campaign``), the CLI and the API live at the edges."""

from screening.campaign.anchoring import anchor_scores, apply_offset
from screening.campaign.local import MIN_LOCAL_ROWS, fit_residual_gp, local_features, local_scores
from screening.campaign.propose import (
    SCORED_BY,
    acquisition_values,
    composition_features,
    default_length_scale,
    measured_mask,
    propose_batch,
)
from screening.campaign.types import (
    AcquisitionConfig,
    AcquisitionKind,
    CampaignObjective,
    ConditionValue,
    Direction,
    DiversityKind,
    ExcludeCode,
    Measurement,
    Proposals,
)

__all__ = [
    "MIN_LOCAL_ROWS",
    "SCORED_BY",
    "AcquisitionConfig",
    "AcquisitionKind",
    "CampaignObjective",
    "ConditionValue",
    "Direction",
    "DiversityKind",
    "ExcludeCode",
    "Measurement",
    "Proposals",
    "acquisition_values",
    "anchor_scores",
    "apply_offset",
    "composition_features",
    "default_length_scale",
    "fit_residual_gp",
    "local_features",
    "local_scores",
    "measured_mask",
    "propose_batch",
]
