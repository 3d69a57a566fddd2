"""Regressors used inside the model pipelines (sklearn + torch) and how to read their spread."""

from models.estimators.mlp_ensemble import MLPEnsembleRegressor
from models.estimators.spread import predict_mean_std
from models.estimators.study_offsets import StudyOffsetRegressor

__all__ = ["MLPEnsembleRegressor", "StudyOffsetRegressor", "predict_mean_std"]
