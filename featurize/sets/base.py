"""The FeatureSet contract and the batch representation the fast paths share.

A batch of compositions is flattened in one pass (element rows in the property tables, Z - 1, and
amounts: the composition's reduced amounts, the very numbers matminer uses as weights) and split into
groups of compositions with the same number of elements k. Each group is an ``ElementBatch`` of dense
(m, k) arrays with no padding, so gathering a property table gives an (m, k, properties) array and every
statistic is a handful of whole-array NumPy operations (a loop over the k columns, never over rows).

The weighted statistics reproduce matminer's ``PropertyStats`` formulas exactly (same weights, same
operations, the mode's ``np.isclose`` tie rule); only the summation order can differ (matminer follows
the formula's element order, the fast path sorts by Z), which moves results by a few ulps at most.
NaN element values propagate as they do in matminer (matminer's Magpie tables are imputed, so none occur
with the shipped sets).
"""

from __future__ import annotations

import abc
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np

from featurize.properties import element_index

# Rows featurised per NumPy pass: bounds memory at (CHUNK x k x properties) floats for million-row batches.
CHUNK = 8192
# Distinct element tuples remembered between calls (screening repeats the same chemical systems).
_ROW_CACHE_MAX = 200_000
_row_cache: dict[tuple[str, ...], tuple[int, ...]] = {}


class CompositionLike(Protocol):
    """What a feature set reads from a composition (``featurize.composition.Composition`` satisfies it)."""

    @property
    def elements(self) -> tuple[str, ...]: ...

    @property
    def amounts(self) -> tuple[float, ...]: ...

    def to_pymatgen(self) -> Any: ...


def _element_rows(elements: tuple[str, ...]) -> tuple[int, ...]:
    try:
        rows = tuple(element_index()[s] for s in elements)
    except KeyError as exc:
        raise ValueError(f"element {exc.args[0]!r} has no row in the element-property tables") from exc
    if len(_row_cache) >= _ROW_CACHE_MAX:
        _row_cache.clear()
    _row_cache[elements] = rows
    return rows


@dataclass(frozen=True)
class ElementBatch:
    """m compositions with exactly k elements each: (m, k) property-table rows and amounts."""

    index: np.ndarray  # (m, k) int64, row in the property tables (Z - 1), sorted by Z within a row
    amounts: np.ndarray  # (m, k) float64, reduced amounts (> 0)

    @property
    def n(self) -> int:
        return int(self.index.shape[0])

    @property
    def k(self) -> int:
        return int(self.index.shape[1])

    @property
    def weight_sum(self) -> np.ndarray:
        total: np.ndarray = self.amounts.sum(axis=1)
        return total

    @property
    def fractions(self) -> np.ndarray:
        fractions: np.ndarray = self.amounts / self.weight_sum[:, None]
        return fractions


def group_by_size(
    comps: Sequence[CompositionLike], chunk: int | None = None
) -> Iterator[tuple[np.ndarray, ElementBatch]]:
    """(row positions in ``comps``, ElementBatch) per group of equal element count, at most ``chunk`` rows."""
    chunk = chunk or CHUNK
    elements = [c.elements for c in comps]
    counts = np.fromiter(map(len, elements), dtype=np.int64, count=len(elements))
    total = int(counts.sum())
    get = _row_cache.get
    rows = [get(e) or _element_rows(e) for e in elements]
    flat_index = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int64, count=total)
    flat_amounts = np.fromiter(
        itertools.chain.from_iterable([c.amounts for c in comps]), dtype=np.float64, count=total
    )
    offsets = np.cumsum(counts) - counts
    order = np.argsort(counts, kind="stable")
    sorted_counts = counts[order]
    bounds = np.flatnonzero(np.diff(sorted_counts)) + 1
    for group in np.split(order, bounds):
        if group.size == 0:
            continue
        k = int(counts[group[0]])
        for start in range(0, group.size, chunk):
            positions = group[start : start + chunk]
            flat = offsets[positions][:, None] + np.arange(k)[None, :]
            yield positions, ElementBatch(index=flat_index[flat], amounts=flat_amounts[flat])


# ---- matminer PropertyStats, vectorised ----------------------------------------------------------------
# values are element-major (k, m, p) (``table[batch.index.T]``) so each element column is one contiguous
# (m, p) block; weights are (m, k). Every function returns (m, p).


def stat_minimum(values: np.ndarray) -> np.ndarray:
    # matminer returns NaN if any value is NaN; np.minimum propagates NaN the same way.
    out: np.ndarray = values[0].copy()
    for column in values[1:]:
        np.minimum(out, column, out=out)
    return out


def stat_maximum(values: np.ndarray) -> np.ndarray:
    out: np.ndarray = values[0].copy()
    for column in values[1:]:
        np.maximum(out, column, out=out)
    return out


def _weighted_sum(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    out: np.ndarray = values[0] * weights[:, 0, None]
    for j in range(1, values.shape[0]):
        out += values[j] * weights[:, j, None]
    return out


def stat_mean(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    # np.average: sum(v * w) / sum(w)
    mean: np.ndarray = _weighted_sum(values, weights) / weights.sum(axis=1)[:, None]
    return mean


def stat_avg_dev(values: np.ndarray, weights: np.ndarray, mean: np.ndarray) -> np.ndarray:
    # np.average(|v - mean|, weights=w)
    dev: np.ndarray = _weighted_sum(np.abs(values - mean[None]), weights) / weights.sum(axis=1)[:, None]
    return dev


def stat_std_dev(values: np.ndarray, weights: np.ndarray, mean: np.ndarray) -> np.ndarray:
    # matminer: 0 for a single entry, else sqrt(beta * sum(w (v - mean)^2)) with the unbiased weight
    # factor beta = sum(w) / (sum(w)^2 - sum(w^2)) (so the value depends on the scale of the amounts).
    if values.shape[0] == 1:
        return np.zeros(values.shape[1:])
    sw = weights.sum(axis=1)
    beta = sw / (sw * sw - (weights * weights).sum(axis=1))
    std: np.ndarray = np.sqrt(beta[:, None] * _weighted_sum((values - mean[None]) ** 2, weights))
    return std


def stat_mode(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    # matminer: minimum value among the entries whose weight np.isclose()s the largest weight
    # (rtol 1e-5, atol 1e-8 against the max: |w - wmax| <= 1e-8 + 1e-5 * |wmax|).
    wmax = weights.max(axis=1, keepdims=True)
    tied = np.abs(weights - wmax) <= 1e-8 + 1e-5 * np.abs(wmax)
    out = np.where(tied[:, 0, None], values[0], np.inf)
    for j in range(1, values.shape[0]):
        np.minimum(out, np.where(tied[:, j, None], values[j], np.inf), out=out)
    return out


class FeatureSet(abc.ABC):
    """A named, versioned set of composition features with matminer's labels.

    ``compute`` is the fast NumPy path; ``compute_reference`` runs matminer itself (the reference the
    fast path is tested against). Both return a float64 (n, len(feature_labels())) array. A model
    records ``f"{name}"`` (which carries the version) as part of its contract.
    """

    name: ClassVar[str]
    version: ClassVar[int]

    @abc.abstractmethod
    def feature_labels(self) -> list[str]: ...

    @abc.abstractmethod
    def citations(self) -> list[str]: ...

    @abc.abstractmethod
    def compute_batch(self, batch: ElementBatch) -> np.ndarray:
        """Fast path on one group of compositions with the same number of elements: (m, features)."""

    @abc.abstractmethod
    def compute_reference(self, comps: Sequence[CompositionLike]) -> np.ndarray: ...

    def labels(self) -> tuple[str, ...]:
        """``feature_labels()``, built once per instance (the sets are shared and stateless; building
        the 132 Magpie labels cost ~20 us, twice per featurised batch, one-row predictions included)."""
        cached: tuple[str, ...] | None = self.__dict__.get("_labels")
        if cached is None:
            cached = self.__dict__["_labels"] = tuple(self.feature_labels())
        return cached

    def compute(self, comps: Sequence[CompositionLike]) -> np.ndarray:
        out = np.empty((len(comps), len(self.labels())), dtype=np.float64)
        for positions, batch in group_by_size(comps):
            out[positions] = self.compute_batch(batch)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
