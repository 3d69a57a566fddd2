"""POST /v1/rank-dopants: host + site + dopants + fractions -> ranked candidates, synchronously."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, status

from service.api.deps import ComputeDep, PredictorsDep, SettingsDep
from service.api.schemas.common import ERROR_RESPONSES
from service.api.schemas.rank import RANK_EXAMPLE, RankRequest, RankResponse, RejectedCandidate
from service.api.screen_job import (
    SpecRejected,
    missing_targets,
    parse_and_count,
    rank_small,
    records,
)

router = APIRouter(tags=["rank"])

# Same on every row (and said once in the response): left out of the candidate rows.
_REPEATED = ["ranked_by", "template", "host", "family", "phase"]


@router.post(
    "/rank-dopants",
    response_model=RankResponse,
    responses={**ERROR_RESPONSES, 503: {"description": "No model is loaded for a target the family needs"}},
    summary="Rank dopants x fractions on a host site (small screens; larger ones are screening jobs)",
)
async def rank_dopants(
    predictors: PredictorsDep,
    settings: SettingsDep,
    compute: ComputeDep,
    body: Annotated[RankRequest, Body(openapi_examples={"NASICON Zr site": {"value": RANK_EXAMPLE}})],
) -> RankResponse:
    """Every candidate is charge-balance checked (rejected ones come back with their reason), scored on the
    family's targets with uncertainty and domain flags, and ranked by the requested mode."""
    # on the server's compute thread: the event loop (and /health) never waits behind a ranking
    return await compute.run(lambda: _rank(body, predictors, settings))


def _rank(body: RankRequest, predictors: Any, settings: Any) -> RankResponse:
    if len(body.fractions) > settings.max_fraction_grid:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"fractions: {len(body.fractions)} values; at most {settings.max_fraction_grid} per request",
        )
    try:
        spec, n, anchors = parse_and_count(
            body.to_spec(),
            settings,
            max_candidates=settings.max_rank_candidates,
            too_many_hint="submit it as a screening job (POST /v1/screening-jobs)",
            predictors=predictors,
        )
    except SpecRejected as exc:
        raise HTTPException(exc.status_code, exc.detail) from None
    absent = missing_targets(spec.targets, predictors)
    if absent:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, f"no champion model is loaded for {', '.join(absent)}"
        )
    result = rank_small(spec, n, predictors, anchors)
    rejected = [
        RejectedCandidate(candidate=str(r.get("formula", r.get("description", ""))), reason=str(r["reason"]))
        for r in records(result.rejected.head(100))
    ]
    return RankResponse(
        ranking=result.ranking,
        targets=result.targets,
        n_generated=result.n_generated,
        n_rejected=len(result.rejected),
        n_scored=len(result.ranked),
        phase=spec.phase,
        candidates=records(with_host(result.ranked, body.top_k).drop(columns=_REPEATED, errors="ignore")),
        rejected=rejected,
        reference=spec.reference,
    )


def with_host(ranked: Any, k: int) -> Any:
    """The top ``k`` rows and the host row (the 0 line of the deltas) after them when it is not among them."""
    import pandas as pd

    top = ranked.head(k)
    if "is_host" not in ranked.columns or top["is_host"].astype(bool).any():
        return top
    return pd.concat([top, ranked[ranked["is_host"].astype(bool)].head(1)])
