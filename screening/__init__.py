"""Candidate generation, batch scoring and ranking. Imports models and featurize only."""
