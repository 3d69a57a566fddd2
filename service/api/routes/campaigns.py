"""Closed-loop campaigns over HTTP: create, list, get, propose the next batch, add measured results, history.

Every route calls the one campaign service (``service.campaigns.service``), the one ``nascreen campaign``
calls. Writes need X-API-Key when the server has one (as screening jobs do). Proposals score the whole
candidate space and an upload may refit a model: both run on the server's compute thread, never on the
event loop. The store is the SQLite file beside the job store, so campaigns survive a restart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Body, HTTPException, Path, Query, status

from service.api.deps import ApiKeyDep, CampaignsDep, ComputeDep
from service.api.schemas.campaigns import (
    CAMPAIGN_EXAMPLE,
    RESULTS_EXAMPLE,
    CalibrationOut,
    CampaignCreate,
    CampaignList,
    CampaignOut,
    HistoryResponse,
    ProposalRequest,
    RefitOut,
    ResultOut,
    ResultsRequest,
    ResultsResponse,
    RoundOut,
)
from service.api.schemas.common import ERROR_RESPONSES
from service.campaigns.report import campaign_status
from service.campaigns.service import CampaignService

router = APIRouter(prefix="/campaigns", tags=["campaigns"])
BASE = "/v1/campaigns"
T = TypeVar("T")

CampaignRef = Annotated[
    str, Path(min_length=1, max_length=64, description="Campaign id (UUID) or name", pattern=r"^[a-z0-9_-]+$")
]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No campaign with this id or name"}}
_WRITE: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    401: {"description": "X-API-Key missing or wrong (when configured)"},
    503: {"description": "No model is loaded for an objective's target"},
}


def _call(fn: Callable[[], T]) -> T:
    """``fn()`` with the campaign errors mapped to HTTP: unknown 404, name taken / round running 409,
    bad request 422, no model 503."""
    from models.tracking import NoChampionError
    from service.campaigns.results import ResultsError
    from service.campaigns.service import CampaignError
    from service.campaigns.store import CampaignExistsError, RoundInProgressError, UnknownCampaignError

    try:
        return fn()
    except UnknownCampaignError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no campaign {exc.args[0]!r}") from None
    except (CampaignExistsError, RoundInProgressError) as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except (CampaignError, ResultsError) as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    except NoChampionError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None


def _out(service: CampaignService, ref: str) -> CampaignOut:
    record = service.get(ref)
    st = service.store
    summary = campaign_status(record, st.rounds(record.id), st.results(record.id), st.refits(record.id))
    return CampaignOut.of(record, summary, BASE)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=CampaignOut,
    dependencies=[ApiKeyDep],
    responses={**_WRITE, 409: {"description": "A campaign with this name exists"}},
    summary="Create a campaign over the candidates of a screening spec",
)
async def create_campaign(
    campaigns: CampaignsDep,
    compute: ComputeDep,
    body: Annotated[CampaignCreate, Body(openapi_examples={"NASICON": {"value": CAMPAIGN_EXAMPLE}})],
) -> CampaignOut:
    objectives = None
    if body.objectives:
        objectives = [o.model_dump(exclude_none=True, mode="json") for o in body.objectives]

    def create() -> CampaignOut:
        record = campaigns.new(
            name=body.name,
            spec=body.spec,
            objectives=objectives,
            acquisition=body.acquisition,
            seed=body.seed,
            reference=body.reference,
        )
        return _out(campaigns, record.id)

    return await compute.run(lambda: _call(create))


@router.get("", response_model=CampaignList, summary="Campaigns, newest first")
async def list_campaigns(
    campaigns: CampaignsDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> CampaignList:
    return CampaignList(campaigns=[_out(campaigns, r.id) for r in campaigns.recent(limit)])


@router.get("/{campaign_id}", response_model=CampaignOut, responses=_NOT_FOUND, summary="One campaign")
async def get_campaign(campaign_id: CampaignRef, campaigns: CampaignsDep) -> CampaignOut:
    return _call(lambda: _out(campaigns, campaign_id))


@router.post(
    "/{campaign_id}/proposals",
    status_code=status.HTTP_201_CREATED,
    response_model=RoundOut,
    dependencies=[ApiKeyDep],
    responses={**_WRITE, **_NOT_FOUND, 409: {"description": "A proposal of this campaign is being computed"}},
    summary="Propose the next batch of k candidates (a new round)",
)
async def propose(
    campaign_id: CampaignRef,
    campaigns: CampaignsDep,
    compute: ComputeDep,
    body: Annotated[ProposalRequest | None, Body()] = None,
) -> RoundOut:
    k = (body or ProposalRequest()).k
    return await compute.run(lambda: _call(lambda: RoundOut.of(campaigns.propose(campaign_id, k))))


@router.post(
    "/{campaign_id}/results",
    response_model=ResultsResponse,
    dependencies=[ApiKeyDep],
    responses={**_WRITE, **_NOT_FOUND},
    summary="Add measured rows; a bad row is refused with its reason and the others are taken",
)
async def add_results(
    campaign_id: CampaignRef,
    campaigns: CampaignsDep,
    compute: ComputeDep,
    body: Annotated[ResultsRequest, Body(openapi_examples={"NASICON": {"value": RESULTS_EXAMPLE}})],
) -> ResultsResponse:
    import pandas as pd

    frame = pd.DataFrame([row.model_dump() for row in body.rows])
    frame = frame.dropna(axis=1, how="all")  # a column no row gave is not a column of the upload

    def add() -> ResultsResponse:
        outcome = campaigns.add_results(campaign_id, frame)
        return ResultsResponse(
            batch=outcome.batch,
            n_accepted=outcome.n_accepted,
            n_refused=outcome.n_rejected,
            rows=[ResultOut.of(r) for r in outcome.rows],
            notes=outcome.notes,
            refits=[RefitOut.of(r) for r in outcome.refits],
            refit_skipped=outcome.refit_skipped,
        )

    return await compute.run(lambda: _call(add))


@router.get(
    "/{campaign_id}/history",
    response_model=HistoryResponse,
    responses=_NOT_FOUND,
    summary="Rounds, every uploaded row (with what was predicted before), calibration per round, refits",
)
async def history(campaign_id: CampaignRef, campaigns: CampaignsDep) -> HistoryResponse:
    def build() -> HistoryResponse:
        record = campaigns.get(campaign_id)
        st = campaigns.store
        summary = campaign_status(record, st.rounds(record.id), st.results(record.id), st.refits(record.id))
        return HistoryResponse(
            campaign=CampaignOut.of(record, summary, BASE),
            rounds=[RoundOut.of(r) for r in summary.rounds],
            results=[ResultOut.of(r) for r in summary.results],
            calibration=[
                CalibrationOut.model_validate(row) for row in summary.calibration.to_dict(orient="records")
            ],
            refits=[RefitOut.of(r) for r in summary.refits],
        )

    return _call(build)
