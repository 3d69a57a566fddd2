"""The FeatureSet contract and the batch representation the fast paths share.

A batch of compositions becomes two padded arrays built in one pass: ``index`` (n, k) with each element's
row in the element-property tables (Z - 1) and ``amounts`` (n, k) with its amount (the composition's
reduced amounts, the very numbers matminer sees as weights); ``mask`` marks the real entries (k is the
largest number of elements in the batch). Gathering a property table with ``index`` gives an
(n, k, properties) array, and every statistic is then one masked NumPy reduction over axis 1.

The weighted statistics reproduce matminer's ``PropertyStats`` formulas exactly (same weights, same
operations); only the summation order can differ (matminer follows the formula's element order, the
fast path sorts by Z), which moves results by a few ulps at most.
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


class CompositionLike(Protocol):
    """What a feature set reads from a composition (``featurize.composition.Composition`` satisfies it)."""

    @property
    def elements(self) -> tuple[str, ...]: ...

    @property
    def amounts(self) -> tuple[float, ...]: ...

    def to_pymatgen(self) -> Any: ...


@dataclass(frozen=True)
class ElementBatch:
    """Padded (n, k) element indices and amounts of a batch of compositions."""

    index: np.ndarray  # (n, k) int64, row in the property tables; 0 where masked
    amounts: np.ndarray  # (n, k) float64; 0.0 where masked
    mask: np.ndarray  # (n, k) bool, True for real entries

    @property
    def n(self) -> int:
        return int(self.index.shape[0])

    @property
    def counts(self) -> np.ndarray:
        return self.mask.sum(axis=1)

    @classmethod
    def from_compositions(cls, comps: Sequence[CompositionLike]) -> ElementBatch:
        n = len(comps)
        counts = np.fromiter((len(c.elements) for c in comps), dtype=np.int64, count=n)
        total = int(counts.sum())
        lookup = element_index()
        try:
            flat_index = np.fromiter(
                (lookup[s] for s in itertools.chain.from_iterable(c.elements for c in comps)),
                dtype=np.int64,
                count=total,
            )
        except KeyError as exc:
            raise ValueError(f"element {exc.args[0]!r} has no row in the element-property tables") from exc
        flat_amounts = np.fromiter(
            itertools.chain.from_iterable(c.amounts for c in comps), dtype=np.float64, count=total
        )
        k = int(counts.max()) if n else 1
        mask = np.arange(k)[None, :] < counts[:, None]
        index = np.zeros((n, k), dtype=np.int64)
        amounts = np.zeros((n, k), dtype=np.float64)
        index[mask] = flat_index  # row-major boolean assignment keeps each composition's element order
        amounts[mask] = flat_amounts
        return cls(index=index, amounts=amounts, mask=mask)

    def chunks(self, size: int | None = None) -> Iterator[ElementBatch]:
        size = size or CHUNK
        for start in range(0, self.n, size):
            stop = min(start + size, self.n)
            yield ElementBatch(
                index=self.index[start:stop], amounts=self.amounts[start:stop], mask=self.mask[start:stop]
            )


# ---- matminer PropertyStats, vectorised. values: (n, k, p); weights/mask: (n, k). -------------------


def weighted_minimum(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    # NaN in a present element propagates (matminer returns NaN if any value is NaN).
    return np.where(mask[..., None], values, np.inf).min(axis=1)


def weighted_maximum(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.where(mask[..., None], values, -np.inf).max(axis=1)


def weighted_mean(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    # np.average: sum(v * w) / sum(w). Padding has w = 0 and a finite v, so it adds exact zeros.
    return np.einsum("nkp,nk->np", values, weights) / weights.sum(axis=1)[:, None]


def weighted_avg_dev(values: np.ndarray, weights: np.ndarray, mean: np.ndarray) -> np.ndarray:
    dev = np.abs(values - mean[:, None, :])
    return np.einsum("nkp,nk->np", dev, weights) / weights.sum(axis=1)[:, None]


def weighted_std_dev(
    values: np.ndarray, weights: np.ndarray, mask: np.ndarray, mean: np.ndarray
) -> np.ndarray:
    # matminer: 0 for a single entry, else sqrt(beta * sum(w (v - mean)^2)) with the *unbiased* weight
    # factor beta = sum(w) / (sum(w)^2 - sum(w^2)) (so the value depends on the scale of the amounts).
    sw = weights.sum(axis=1)
    sw2 = (weights * weights).sum(axis=1)
    single = mask.sum(axis=1) == 1
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = np.where(single, 0.0, sw / np.where(single, 1.0, sw * sw - sw2))
        dev = (values - mean[:, None, :]) ** 2
        out = np.sqrt(beta[:, None] * np.einsum("nkp,nk->np", dev, weights))
    out[single] = 0.0
    return out


def weighted_mode(values: np.ndarray, weights: np.ndarray, mask: np.ndarray) -> np.ndarray:
    # matminer: minimum value among the entries whose weight np.isclose()s the largest weight
    # (rtol 1e-5, atol 1e-8, compared against the max: |w - wmax| <= 1e-8 + 1e-5 * |wmax|).
    wmax = np.where(mask, weights, -np.inf).max(axis=1, keepdims=True)
    tied = mask & (np.abs(weights - wmax) <= 1e-8 + 1e-5 * np.abs(wmax))
    return np.where(tied[..., None], values, np.inf).min(axis=1)


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
    def compute_batch(self, batch: ElementBatch, comps: Sequence[CompositionLike]) -> np.ndarray:
        """Fast path on one chunk (``comps`` are the chunk's compositions, for sets that need them)."""

    @abc.abstractmethod
    def compute_reference(self, comps: Sequence[CompositionLike]) -> np.ndarray: ...

    def compute(self, comps: Sequence[CompositionLike]) -> np.ndarray:
        n_features = len(self.feature_labels())
        if len(comps) == 0:
            return np.empty((0, n_features), dtype=np.float64)
        batch = ElementBatch.from_compositions(comps)
        out = np.empty((batch.n, n_features), dtype=np.float64)
        start = 0
        for chunk in batch.chunks():
            out[start : start + chunk.n] = self.compute_batch(chunk, comps[start : start + chunk.n])
            start += chunk.n
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
