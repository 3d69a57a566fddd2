"""The web page: `/` serves the single-page screening UI (static files shipped in this package) and
`/ui/meta` tells it what the server knows (families, targets, dopant groups, limits, the loaded models
with their training-data size), so the page never keeps a second copy of those definitions.

The page itself only calls the public HTTP API (/v1/rank-dopants, /v1/predict, /v1/screening-jobs,
/v1/models, /health); `/ui/meta` adds nothing the page could not be told otherwise, it only saves it
from hard-coding the screening vocabulary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from featurize import elements as el
from models.targets import TARGETS
from screening.ranking import MODES
from screening.spec import COMPENSATION_MODES, DOPANT_GROUPS, FAMILIES
from service.api.deps import StateDep

STATIC_DIR = Path(__file__).resolve().parent / "static"

router = APIRouter(include_in_schema=False)

# Elements offered as dopants: H..Bi plus the lanthanides (no noble gases; nothing radioactive beyond Bi).
_MAX_Z = 83


def table_position(z: int) -> tuple[int, int]:
    """(row, column) of element `z` in the 18-column periodic table; lanthanides La..Lu on row 8 and
    actinides on row 9 (the f-block rows under the table), columns 3..17."""
    if z < 1 or z > 118:
        raise ValueError(f"atomic number {z} is outside 1..118")
    if 57 <= z <= 71:
        return 8, z - 57 + 3
    if 89 <= z <= 103:
        return 9, z - 89 + 3
    starts = ((1, 1), (3, 2), (11, 3), (19, 4), (37, 5), (55, 6), (87, 7))
    first, period = next((s, p) for s, p in reversed(starts) if z >= s)
    offset = z - first
    if period == 1:
        return 1, 1 if z == 1 else 18
    if period in (2, 3):
        return period, offset + 1 if offset < 2 else offset + 11
    if period in (4, 5):
        return period, offset + 1
    # periods 6 and 7: s-block, then (after the f-block) groups 4..18
    if offset < 2:
        return period, offset + 1
    return period, offset - 14 + 1


def _elements() -> list[dict[str, Any]]:
    out = []
    for z in range(1, el.Z_MAX + 1):  # the elements nascreen knows (H..Lr)
        row, col = table_position(z)
        sym = el.symbol(z)
        out.append(
            {
                "symbol": sym,
                "z": z,
                "row": row,
                "col": col,
                "dopable": z <= _MAX_Z and sym not in el.NOBLE_GASES and sym not in el.RADIOACTIVE,
            }
        )
    return out


def _model_info(predictor: Any) -> dict[str, Any]:
    """Version and training-data size of a loaded champion (rows and groups of its grouped CV)."""
    model = getattr(predictor, "model", None)
    oof = getattr(model, "oof_", None)
    info: dict[str, Any] = {"version": str(getattr(predictor, "model_version", ""))}
    if oof is not None:
        info["n_training_rows"] = len(oof)
        if "group" in getattr(oof, "columns", ()):
            info["n_training_groups"] = int(oof["group"].nunique())
    elements = getattr(model, "training_elements_", None)
    if elements:
        info["training_elements"] = sorted(elements, key=el.atomic_number)
    return info


@router.get("/")
async def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


@router.get("/ui/meta")
async def meta(state: StateDep) -> dict[str, Any]:
    # the app state through the API's dependency (so a test's dependency override reaches the page too)
    settings = state.settings
    predictors = state.predictors
    missing = state.missing
    return {
        "families": [
            {
                "name": f.name,
                "kind": f.kind,
                "targets": [t.value for t in f.targets],
                "structure_type": f.structure_type,
                "description": f.description,
            }
            for f in FAMILIES.values()
        ],
        "targets": {
            t.name.value: {
                "unit": t.unit,
                "description": t.description,
                "higher_is_better": t.higher_is_better,
            }
            for t in TARGETS.values()
        },
        "dopant_groups": {
            name: sorted(members, key=el.atomic_number) for name, members in DOPANT_GROUPS.items()
        },
        "compensation_modes": list(COMPENSATION_MODES),
        "ranking_modes": list(MODES),
        "elements": _elements(),
        "models": {t.value: _model_info(p) for t, p in predictors.items()},
        "missing": {t.value: str(r) for t, r in missing.items()},
        "limits": {
            "max_rank_candidates": settings.max_rank_candidates,
            "max_fraction_grid": settings.max_fraction_grid,
            "max_items_per_request": settings.max_items_per_request,
            "max_top_k": 1000,
        },
        "api_key_required": settings.api_key is not None,
    }


def mount_web(app: FastAPI) -> None:
    """Add the page (`/`), its metadata (`/ui/meta`) and its static files (`/static/...`) to `app`."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
