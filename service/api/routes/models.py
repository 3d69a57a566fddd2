"""GET /v1/models: the registry as the server sees it."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from models.targets import TARGETS, TargetName
from service.api.deps import StateDep
from service.api.schemas.models import ModelsResponse, RegisteredModel

router = APIRouter(tags=["models"])


@router.get("/models", response_model=ModelsResponse, summary="Registered models, aliases and CV metrics")
def list_models(state: StateDep) -> ModelsResponse:
    from models.tracking import list_registered

    try:
        rows = list_registered(state.settings.resolved_tracking_uri)
    except OSError as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, f"model registry unavailable: {exc}"
        ) from exc
    by_name = {t.registered_model_name: t for t in TARGETS.values()}
    out = []
    for row in rows:
        target = by_name.get(row["name"])
        if target is None:
            continue
        loaded = state.predictors.get(TargetName(target.name))
        created = row.get("created")
        out.append(
            RegisteredModel(
                target=target.name.value,
                name=row["name"],
                version=str(row["version"]),
                aliases=list(row.get("aliases", [])),
                loaded=loaded is not None and loaded.model_version == str(row["version"]),
                unit=target.unit,
                description=target.description,
                model=str(row.get("model", "")),
                feature_set=str(row.get("feature_set", "")),
                created=created.to_pydatetime() if created is not None else None,
                metrics={k: float(v) for k, v in row.get("metrics", {}).items()},
            )
        )
    return ModelsResponse(models=out)
