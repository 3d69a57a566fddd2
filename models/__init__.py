"""Targets, curated data sets, estimators, training, evaluation. Imports featurize only."""
