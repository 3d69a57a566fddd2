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

from collections.abc import Callable, Sequence
from typing import ClassVar

import numpy as np

from featurize import oxidation as current_rules
from featurize import reference
from featurize.properties import element_symbols, pymatgen_electronegativity
from featurize.sets import _oxidation_v1_rules as v1_rules
from featurize.sets.base import (
    CompositionLike,
    ElementBatch,
    FeatureSet,
    stat_maximum,
    stat_mean,
    stat_minimum,
    stat_std_dev,
)
from featurize.sets.citations import DEML_2016, WARD_2016

ION_LABELS: tuple[str, ...] = ("compound possible", "max ionic char", "avg ionic char")
STATE_LABELS: tuple[str, ...] = tuple(f"{s} oxidation state" for s in reference.OXIDATION_STATE_STATS)


def ionic_character(batch: ElementBatch) -> tuple[np.ndarray, np.ndarray]:
    """(max ionic char, avg ionic char) per row, as matminer IonProperty computes them (0 for one element)."""
    if batch.k < 2:
        zeros = np.zeros(batch.n)
        return zeros, zeros.copy()
    x = pymatgen_electronegativity()[batch.index]  # (m, k)
    frac = batch.fractions
    i, j = np.triu_indices(batch.k, k=1)  # matminer's itertools.combinations order
    pair = 1.0 - np.exp(-0.25 * (x[:, i] - x[:, j]) ** 2)  # (m, pairs)
    return pair.max(axis=1), (frac[:, i] * frac[:, j] * pair).sum(axis=1)


BalanceFn = Callable[[list[str], np.ndarray], tuple[np.ndarray, np.ndarray]]


def _v1_balance(symbols: list[str], amounts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return v1_rules.charge_balance_batch(symbols, amounts)


def _v2_balance(symbols: list[str], amounts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return current_rules.charge_balance_batch(symbols, amounts, allow_peroxide=False)


def assigned_states(batch: ElementBatch, balance: BalanceFn = _v1_balance) -> tuple[np.ndarray, np.ndarray]:
    """(m, k) oxidation states and the (m,) balanced mask from ``balance`` (the frozen v1 rules unless
    told); a single element is 0 and counts as balanced (pymatgen/matminer's convention)."""
    if batch.k == 1:
        return np.zeros((batch.n, 1)), np.ones(batch.n, dtype=bool)
    present, column = np.unique(batch.index, return_inverse=True)
    column = column.reshape(batch.index.shape)  # column of each entry in the dense (m, elements) matrix
    dense = np.zeros((batch.n, len(present)), dtype=np.float64)
    np.put_along_axis(dense, column, batch.amounts, axis=1)
    symbols = [element_symbols()[i] for i in present]
    states_dense, balanced = balance(symbols, dense)
    return np.take_along_axis(states_dense, column, axis=1), balanced


class OxidationV1(FeatureSet):
    """The frozen v1 rules (``featurize.sets._oxidation_v1_rules``: peroxide O allowed, fixed redox order)."""

    name: ClassVar[str] = "oxidation_v1"
    version: ClassVar[int] = 1
    balance: ClassVar[BalanceFn] = staticmethod(_v1_balance)

    def feature_labels(self) -> list[str]:
        return [*ION_LABELS, *STATE_LABELS]

    def citations(self) -> list[str]:
        return [WARD_2016, DEML_2016]

    def compute_batch(self, batch: ElementBatch) -> np.ndarray:
        max_ic, avg_ic = ionic_character(batch)
        states, balanced = assigned_states(batch, type(self).balance)
        values = states.T[:, :, None]  # (k, m, 1)
        minimum, maximum = stat_minimum(values)[:, 0], stat_maximum(values)[:, 0]
        std = stat_std_dev(values, batch.amounts, stat_mean(values, batch.amounts))[:, 0]
        return np.column_stack(
            [balanced.astype(np.float64), max_ic, avg_ic, minimum, maximum, maximum - minimum, std]
        )

    def compute_reference(self, comps: Sequence[CompositionLike]) -> np.ndarray:
        pmg = [c.to_pymatgen() for c in comps]
        return np.concatenate(
            [reference.ion_property_reference(pmg), reference.oxidation_state_reference(pmg)], axis=1
        )


class OxidationV2(OxidationV1):
    """Same labels and statistics as v1, from the current ``featurize.oxidation`` rules with O pinned at
    -2 (a formula does not say whether its O is a peroxide; ``compound possible`` is strict neutrality
    within ``featurize.oxidation.near_neutral_tolerance``)."""

    name: ClassVar[str] = "oxidation_v2"
    version: ClassVar[int] = 2
    balance: ClassVar[BalanceFn] = staticmethod(_v2_balance)
