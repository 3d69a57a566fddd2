"""Mean k-nearest-neighbour distances of query rows to a reference set and to subsets of its rows, from one
squared-distance matrix per block of queries (serving-time path of ``models.domain.ApplicabilityDomain``).

The domain measures each query against the training rows three ways: all of them, those containing each
target ion, and those of each (ion, anions) class; sklearn's ``NearestNeighbors.kneighbors`` recomputed the
distances to every subset (its rows are rows of the full set) and validated its input on every call (~0.15
ms each, four calls per one-row prediction). Here the Euclidean distances to all reference rows are
computed once, ``|q|^2 - 2 q.x + |x|^2`` with one matrix product (the expansion sklearn's brute-force
search uses too), and every subset takes its columns. It wins for small requests only (one-item and
small-batch predicts: ``MAX_SHARED_QUERIES``). Values agree with ``kneighbors`` to rounding
(tests/models/test_knn.py: absolute 1e-6 at worst, where a query coincides with a reference row and the
expansion cancels; ~1e-12 otherwise); the neighbours found are the same up to ties, which give equal
distances.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass

import numpy as np
from sklearn.neighbors import NearestNeighbors

#: Queries per distance block: bounds the (block x reference rows) matrix.
BLOCK_ROWS = 2048
#: Up to this many query rows the domain uses the shared search; beyond, sklearn's search per set. Measured
#: on the conductivity domain (830 training rows, 139 features, single thread): 1 row 0.41 vs 0.89 ms,
#: 32 rows 1.19 vs 1.66 ms, 64 rows 1.99 vs 2.17 ms, 128 rows 3.53 vs 3.12 ms, 1,000 rows 32 vs 18 ms:
#: NumPy's per-row k-smallest selection (``np.partition``) loses to sklearn's heap-based ArgKmin once the
#: per-call overhead no longer dominates.
MAX_SHARED_QUERIES = 64


@dataclass(frozen=True)
class SubsetKnn:
    """``reference`` rows (n x d) with their squared norms, ``k`` for the full set, and per key the row
    indices of a subset with its own k."""

    reference: np.ndarray
    sq_norms: np.ndarray
    k: int
    subsets: Mapping[Hashable, tuple[np.ndarray, int]]

    @classmethod
    def from_neighbours(
        cls, full: NearestNeighbors, subsets: Mapping[Hashable, NearestNeighbors]
    ) -> SubsetKnn | None:
        """Built from fitted Euclidean ``NearestNeighbors`` whose subset rows are rows of ``full``'s
        (matched bit for bit); None when one is not Euclidean or a subset row is not in ``full``."""
        if not all(_euclidean(nn) for nn in (full, *subsets.values())):
            return None
        reference = np.ascontiguousarray(full._fit_X, dtype=np.float64)
        where: dict[bytes, int] = {}
        for i, row in enumerate(reference):
            where.setdefault(row.tobytes(), i)
        found: dict[Hashable, tuple[np.ndarray, int]] = {}
        for key, nn in subsets.items():
            rows = np.ascontiguousarray(nn._fit_X, dtype=np.float64)
            idx = [where.get(row.tobytes(), -1) for row in rows]
            if min(idx, default=0) < 0:
                return None
            found[key] = (np.asarray(idx, dtype=np.intp), int(nn.n_neighbors))
        sq = np.einsum("ij,ij->i", reference, reference)
        return cls(reference, sq, int(full.n_neighbors), found)

    def mean_distances(
        self,
        Q: np.ndarray,
        wanted: Mapping[Hashable, np.ndarray] | None = None,
        *,
        named_only: bool = False,
    ) -> tuple[np.ndarray, dict[Hashable, np.ndarray]]:
        """Per query row (finite, already scaled like the reference): mean distance to its k nearest
        reference rows, and the same within each subset (NaN for the rows a subset is not ``wanted`` for:
        ``wanted[key]`` is a boolean mask over the queries; all rows for a key it does not name). With
        ``named_only``, only the subsets ``wanted`` names are searched and returned: a one-row query of the
        conductivity domain reads 1 of its ~60 subsets, and allocating and skipping the other ones cost
        more than the search."""
        Q = np.asarray(Q, dtype=np.float64)
        full = np.empty(len(Q))
        if named_only and wanted is not None:
            subsets = {key: self.subsets[key] for key in wanted if key in self.subsets}
        else:
            subsets = dict(self.subsets)
        parts = {key: np.full(len(Q), np.nan) for key in subsets}
        for start in range(0, len(Q), BLOCK_ROWS):
            block = Q[start : start + BLOCK_ROWS]
            d2 = np.einsum("ij,ij->i", block, block)[:, None] - 2.0 * (block @ self.reference.T)
            d2 += self.sq_norms[None, :]
            np.maximum(d2, 0.0, out=d2)
            rows = slice(start, start + len(block))
            full[rows] = _mean_k_smallest(d2, self.k)
            for key, (idx, k) in subsets.items():
                mask = None if wanted is None else wanted.get(key)
                if mask is None:
                    parts[key][rows] = _mean_k_smallest(d2[:, idx], k)
                    continue
                picked = np.flatnonzero(mask[rows])
                if picked.size:
                    parts[key][start + picked] = _mean_k_smallest(d2[np.ix_(picked, idx)], k)
        return full, parts


def _mean_k_smallest(d2: np.ndarray, k: int) -> np.ndarray:
    """Mean of the square roots of the k smallest values of each row, summed nearest first (as the sorted
    distances ``kneighbors`` returns are averaged)."""
    k = min(k, d2.shape[1])
    if k < d2.shape[1]:
        d2 = np.partition(d2, k - 1, axis=1)[:, :k]
    nearest = np.sqrt(np.sort(d2, axis=1))
    mean: np.ndarray = nearest.mean(axis=1)
    return mean


def _euclidean(nn: NearestNeighbors) -> bool:
    metric = getattr(nn, "effective_metric_", None)
    params = getattr(nn, "effective_metric_params_", None) or {}
    return metric == "euclidean" and not params and hasattr(nn, "_fit_X")
