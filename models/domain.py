"""Applicability domain: is a query like the rows the model was trained on?

Two independent tests, each with a reason a user can act on:
- elements: an element that never occurs in the target's training formulas is out of domain, whatever the
  features say ("elements not in the training data: Cl, Hf").
- feature space: the mean Euclidean distance from the query to its ``k`` nearest training rows, measured in
  the model's own feature space (the pipeline's transformed features, standardised here per feature on the
  training rows so no feature dominates by its unit). The threshold is the ``quantile`` of the same distance
  for held-out rows of grouped CV (each measured to its own training folds), so "too far" means farther
  than ``quantile`` of genuinely new groups were, in the model's own cross-validation.

Pure: arrays in, arrays out. ``UncertainRegressor`` (models/uncertain.py) produces the held-out distances.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.neighbors import NearestNeighbors
from sklearn.utils.validation import check_is_fitted


class FeatureSpaceDistance(BaseEstimator):
    """Mean distance to the ``k`` nearest reference rows in per-feature standardised space."""

    def __init__(self, k: int = 5) -> None:
        self.k = k

    def fit(self, Z: Any, y: Any = None) -> FeatureSpaceDistance:
        Z = _finite_2d(Z, "reference features")
        if not isinstance(self.k, int | np.integer) or self.k < 1:
            raise ValueError(f"k must be a positive integer, got {self.k!r}")
        self.center_ = Z.mean(axis=0)
        scale = Z.std(axis=0)
        scale[~(scale > 1e-12)] = 1.0  # a feature constant in training: distances in its raw units
        self.scale_ = scale
        self.k_ = int(min(self.k, len(Z)))
        self.nn_ = NearestNeighbors(n_neighbors=self.k_).fit((Z - self.center_) / self.scale_)
        self.n_features_in_ = Z.shape[1]
        return self

    def mean_knn_distance(self, Z: Any) -> np.ndarray:
        """Mean distance of each row to its k nearest reference rows (NaN for non-finite features)."""
        check_is_fitted(self, "nn_")
        Z = np.asarray(Z, dtype=float)
        if Z.ndim != 2 or Z.shape[1] != self.n_features_in_:
            raise ValueError(f"expected features of shape (n, {self.n_features_in_}), got {Z.shape}")
        out = np.full(len(Z), np.nan)
        ok = np.isfinite(Z).all(axis=1)
        if ok.any():
            dist, _ = self.nn_.kneighbors((Z[ok] - self.center_) / self.scale_)
            out[ok] = dist.mean(axis=1)
        return out


def _finite_2d(Z: Any, what: str) -> np.ndarray:
    Z = np.asarray(Z, dtype=float)
    if Z.ndim != 2 or len(Z) == 0:
        raise ValueError(f"{what} must be a non-empty 2-D array, got shape {Z.shape}")
    if not np.isfinite(Z).all():
        raise ValueError(f"{what} contain NaN or infinite values (impute before the domain)")
    return Z


def _element_sort_key(symbol: str) -> tuple[int, str]:
    from pymatgen.core.periodic_table import Element

    try:
        return (int(Element(symbol).Z), symbol)
    except ValueError:
        return (10**6, symbol)


class ApplicabilityDomain(BaseEstimator):
    """In-domain flag + reason per query row from its elements and its feature-space distance.

    Parameters
    ----------
    k : neighbours averaged in the distance.
    quantile : quantile of the held-out CV distances used as the threshold (0.95: 5% of new groups in CV
        would have been flagged).
    """

    def __init__(self, k: int = 5, quantile: float = 0.95) -> None:
        self.k = k
        self.quantile = quantile

    def fit(
        self,
        Z: Any,
        *,
        training_elements: Iterable[str],
        heldout_distances: Any,
    ) -> ApplicabilityDomain:
        """Fit on the training rows' features ``Z``; the threshold comes from ``heldout_distances``.

        ``heldout_distances`` are ``FeatureSpaceDistance(k)`` distances of grouped-CV held-out rows to their
        own training folds (finite values are used; at least one is required).
        """
        if not 0.0 < self.quantile <= 1.0:
            raise ValueError(f"quantile must be in (0, 1], got {self.quantile!r}")
        d = np.asarray(heldout_distances, dtype=float)
        d = d[np.isfinite(d)]
        if d.size == 0:
            raise ValueError("heldout_distances has no finite value: cannot choose a domain threshold")
        self.distance_ = FeatureSpaceDistance(self.k).fit(Z)
        self.threshold_ = float(np.quantile(d, self.quantile))
        self.training_elements_ = frozenset(training_elements)
        return self

    def distances(self, Z: Any) -> np.ndarray:
        check_is_fitted(self, "distance_")
        return self.distance_.mean_knn_distance(Z)

    def assess(
        self, Z: Any, element_sets: Sequence[Iterable[str]]
    ) -> tuple[np.ndarray, list[str], np.ndarray]:
        """(in_domain bool array, reason per row ("" when in domain), distance per row)."""
        check_is_fitted(self, "distance_")
        dist = self.distances(Z)
        if len(element_sets) != len(dist):
            raise ValueError(f"got {len(element_sets)} element sets for {len(dist)} feature rows")
        k = self.distance_.k_
        finite = np.isfinite(dist)
        far = np.zeros(len(dist), dtype=bool)
        far[finite] = dist[finite] > self.threshold_
        unseen_reason: dict[frozenset[str], str] = {}  # a batch has few distinct element sets
        in_domain = np.ones(len(dist), dtype=bool)
        reasons: list[str] = []
        for i, elements in enumerate(element_sets):
            key = elements if isinstance(elements, frozenset) else frozenset(elements)
            unseen = unseen_reason.get(key)
            if unseen is None:
                missing = sorted(key - self.training_elements_, key=_element_sort_key)
                unseen = f"elements not in the training data: {', '.join(missing)}" if missing else ""
                unseen_reason[key] = unseen
            if finite[i] and not far[i]:
                in_domain[i] = not unseen
                reasons.append(unseen)
                continue
            parts = [unseen] if unseen else []
            if not finite[i]:
                parts.append("features are not finite (cannot measure the distance to the training data)")
            else:
                parts.append(
                    f"feature-space distance {dist[i]:.3g} > threshold {self.threshold_:.3g} "
                    f"(mean of {k} nearest training rows)"
                )
            in_domain[i] = False
            reasons.append("; ".join(parts))
        return in_domain, reasons, dist
