"""``oxidation_v1``: ionic character (matminer ``IonProperty`` labels) + oxidation-state statistics
(matminer ``OxidationStates`` labels), from ``featurize.oxidation``'s charge-balance assignment.

Features (matminer's labels):

* ``compound possible``: 1.0 if a charge-neutral assignment within the allowed states exists
  (``featurize.oxidation.charge_balance_batch``), else 0.0; 1.0 for a single element (matminer's rule).
* ``max ionic char``, ``avg ionic char``: exactly matminer ``IonProperty``: ionic character of a pair
  ``1 - exp(-(X_A - X_B)^2 / 4)`` with pymatgen's Pauling electronegativity (matminer's imputed value
  for elements without one); max over pairs, and sum over pairs of ``x_A x_B`` times it (0 for a single
  element).
* ``minimum/maximum/range/std_dev oxidation state``: matminer ``OxidationStates`` statistics of the
  per-element average oxidation states, weighted by the reduced amounts (std_dev is matminer's
  unbiased-weight formula, 0 for a single element). The states are the charge-balance assignment; for a
  composition that cannot be balanced they are the closest assignment (every variable element at its
  bound) and ``compound possible`` is 0, so they are never a silent NaN. A single element is 0.

How this differs from matminer (deliberately, and why the set is not called IonProperty):
matminer decides ``compound possible`` and the states with pymatgen's ``oxi_state_guesses`` (tens of
compositions per second, integer-formula enumeration that gives up on most fractional mixed-valence
oxides); here it is one vectorised bound-and-fill pass over the batch. ``compute_reference`` runs
matminer's ``IonProperty(fast=False)`` and ``CompositionToOxidComposition`` + ``OxidationStates`` (NaN
where matminer's guessing fails); the ionic-character columns agree to rounding, the others are
compared (agreement rate) rather than required to be equal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from featurize import reference
from featurize.oxidation import charge_balance_batch
from featurize.properties import element_symbols, pymatgen_electronegativity
from featurize.sets.base import (
    CompositionLike,
    ElementBatch,
    FeatureSet,
    weighted_maximum,
    weighted_mean,
    weighted_minimum,
    weighted_std_dev,
)
from featurize.sets.citations import DEML_2016, WARD_2016

ION_LABELS: tuple[str, ...] = ("compound possible", "max ionic char", "avg ionic char")
STATE_LABELS: tuple[str, ...] = tuple(f"{s} oxidation state" for s in reference.OXIDATION_STATE_STATS)


def ionic_character(batch: ElementBatch) -> tuple[np.ndarray, np.ndarray]:
    """(max ionic char, avg ionic char) per row, as matminer IonProperty computes them."""
    x = pymatgen_electronegativity()[batch.index]  # (n, k)
    diff = x[:, :, None] - x[:, None, :]
    pair = 1.0 - np.exp(-0.25 * diff**2)  # (n, k, k), symmetric, 0 on the diagonal
    pair_mask = batch.mask[:, :, None] & batch.mask[:, None, :]
    upper = np.triu(np.ones(pair.shape[1:], dtype=bool), k=1)[None]
    valid = pair_mask & upper
    single = batch.counts < 2
    max_ic = np.where(valid, pair, -np.inf).reshape(batch.n, -1).max(axis=1)
    frac = batch.amounts / batch.amounts.sum(axis=1, keepdims=True)
    avg_ic = np.einsum("ni,nj,nij->n", frac, frac, np.where(valid, pair, 0.0))
    return np.where(single, 0.0, max_ic), np.where(single, 0.0, avg_ic)


def assigned_states(batch: ElementBatch) -> tuple[np.ndarray, np.ndarray]:
    """Padded (n, k) oxidation states and the (n,) balanced mask from ``charge_balance_batch``."""
    present = np.unique(batch.index[batch.mask])
    symbols = [element_symbols()[i] for i in present]
    column = np.searchsorted(present, batch.index)  # column of each padded entry in the dense matrix
    column[~batch.mask] = 0
    dense = np.zeros((batch.n, len(present)), dtype=np.float64)
    rows = np.broadcast_to(np.arange(batch.n)[:, None], batch.index.shape)
    dense[rows[batch.mask], column[batch.mask]] = batch.amounts[batch.mask]
    states_dense, balanced = charge_balance_batch(symbols, dense)
    states = np.take_along_axis(states_dense, column, axis=1)
    states = np.where(batch.mask, states, 0.0)
    single = batch.counts == 1
    states[single] = 0.0  # an element on its own: oxidation state 0, as pymatgen/matminer give
    return states, balanced | single


class OxidationV1(FeatureSet):
    name: ClassVar[str] = "oxidation_v1"
    version: ClassVar[int] = 1

    def feature_labels(self) -> list[str]:
        return [*ION_LABELS, *STATE_LABELS]

    def citations(self) -> list[str]:
        return [WARD_2016, DEML_2016]

    def compute_batch(self, batch: ElementBatch, comps: Sequence[CompositionLike]) -> np.ndarray:
        max_ic, avg_ic = ionic_character(batch)
        states, balanced = assigned_states(batch)
        values = states[:, :, None]  # (n, k, 1)
        minimum = weighted_minimum(values, batch.mask)[:, 0]
        maximum = weighted_maximum(values, batch.mask)[:, 0]
        mean = weighted_mean(values, batch.amounts)
        std = weighted_std_dev(values, batch.amounts, batch.mask, mean)[:, 0]
        return np.column_stack(
            [balanced.astype(np.float64), max_ic, avg_ic, minimum, maximum, maximum - minimum, std]
        )

    def compute_reference(self, comps: Sequence[CompositionLike]) -> np.ndarray:
        pmg = [c.to_pymatgen() for c in comps]
        return np.concatenate(
            [reference.ion_property_reference(pmg), reference.oxidation_state_reference(pmg)], axis=1
        )
