"""Shapes shared by several resources."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ErrorResponse(BaseModel):
    """Every 4xx/5xx body: `detail` is a sentence, or for schema violations a list naming where and why."""

    detail: str | list[dict[str, object]] = Field(
        description="What is wrong; for 422 schema errors a list of {loc, msg, type}, loc naming the "
        "item index and field."
    )


ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    413: {"model": ErrorResponse, "description": "Request too large (body, items, or candidates)"},
    422: {"model": ErrorResponse, "description": "Invalid request: names the offending item/field and why"},
}
