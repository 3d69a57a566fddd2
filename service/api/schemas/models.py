"""GET /v1/models."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class RegisteredModel(BaseModel):
    target: str
    name: str = Field(description="MLflow registered model name, nascreen-<target>")
    version: str
    aliases: list[str] = Field(description="e.g. ['champion']")
    loaded: bool = Field(description="This version is the one the server answers with")
    unit: str
    description: str
    model: str = Field(default="", description="Estimator family recorded at training")
    feature_set: str = ""
    created: datetime | None = None
    metrics: dict[str, float] = Field(description="Grouped-CV metrics of the training run (MAE, RMSE, ...)")


class ModelsResponse(BaseModel):
    models: list[RegisteredModel]
