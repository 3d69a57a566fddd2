"""Cross-ion transfer features for the conductivity model: let a Li halide or thiophosphate inform its Na
analogue.

- ``MobileIonSwap``: the formula with the mobile ion replaced (Li -> Na by default), so Li3InCl6 and
  Na3InCl6 get the same framework features; the ion's identity stays visible through the Na/Li fractions
  the pipeline already has (``models.features.IonFractions``).
- ``ANION_ELEMENTS``: atomic fractions of the anion-framework formers (O, S, Se, F, Cl, Br, I, N, H, B),
  so "chloride", "oxychloride", "thiophosphate", "closo-borate" are a few splits away for a tree.
- ``IonRoutedRegressor``: one forest per mobile ion (what the grouped-CV comparison kept, see its docstring).

``transfer_blocks(kind)`` gives the extra ColumnTransformer blocks of a candidate (``models.training``).
Measured and not adopted (CHANGELOG): the two feature blocks, a per-class offset on out-of-bag residuals
and a k-nearest-neighbour residual offset; none beat the plain forest under grouped CV.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, TransformerMixin, clone
from sklearn.ensemble import RandomForestRegressor
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from featurize.composition import Composition, CompositionError, parse_formula
from featurize.transformer import CompositionFeaturizer

ANION_ELEMENTS = ("O", "S", "Se", "F", "Cl", "Br", "I", "N", "H", "B")
TRANSFER_KINDS = ("none", "anions", "swap", "swap+anions")


def swap_ion(formula: object, source: str = "Li", target: str = "Na") -> object:
    """The formula with every ``source`` atom counted as ``target`` (unparseable input is returned as is,
    so the composition featurizer reports it)."""
    try:
        comp = parse_formula(formula)
    except CompositionError:
        return formula
    amounts = comp.as_dict()
    moved = amounts.pop(source, 0.0)
    if not moved:
        return comp.formula
    amounts[target] = amounts.get(target, 0.0) + moved
    return Composition.from_amounts(amounts).formula


class MobileIonSwap(TransformerMixin, BaseEstimator):
    """Formula column -> the same column with ``source`` atoms counted as ``target`` (stateless)."""

    def __init__(self, source: str = "Li", target: str = "Na") -> None:
        self.source = source
        self.target = target

    def fit(self, X: Any, y: Any = None) -> MobileIonSwap:
        self.n_features_in_ = 1
        return self

    def transform(self, X: Any) -> pd.DataFrame:
        check_is_fitted(self, "n_features_in_")
        formulas = X.iloc[:, 0] if isinstance(X, pd.DataFrame) else pd.Series(np.asarray(X).reshape(-1))
        cache: dict[object, object] = {}
        out = []
        for f in formulas:
            key = f if isinstance(f, str) else id(f)
            if key not in cache:
                cache[key] = swap_ion(f, self.source, self.target)
            out.append(cache[key])
        return pd.DataFrame({"formula": out}, index=formulas.index)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(["formula"], dtype=object)


def transfer_blocks(kind: str, feature_set: str = "magpie_v1") -> list[tuple[str, Any, list[str]]]:
    """Extra feature blocks (name, transformer, columns) for a conductivity pipeline."""
    from models.features import IonFractions  # the pipeline's own element-fraction transformer

    if kind not in TRANSFER_KINDS:
        raise ValueError(f"unknown transfer kind {kind!r}: expected one of {', '.join(TRANSFER_KINDS)}")
    blocks: list[tuple[str, Any, list[str]]] = []
    if "swap" in kind:
        swapped = Pipeline(
            [
                ("swap", MobileIonSwap("Li", "Na")),
                ("composition", CompositionFeaturizer(feature_set=feature_set, formula_column="formula")),
            ]
        )
        blocks.append(("na_analogue", swapped, ["formula"]))
    if "anions" in kind:
        blocks.append(("anions", IonFractions(ANION_ELEMENTS), ["formula"]))
    return blocks


class IonRoutedRegressor(RegressorMixin, BaseEstimator):
    """One forest per mobile ion: rows with Na and without Li are fitted and predicted by a forest trained
    on those rows only; every other row (Li, mixed, neither) by a forest trained on all rows.

    Measured (grouped CV by source, Na rows held out): Li rows in training made the Na predictions worse
    (Na beyond NASICON: MAE 1.21 joint vs 1.00 Na-only; all Na rows 0.94 vs 0.89): a Li aluminate or
    thiophosphate pulls a Na analogue towards the Li value. ``ion_column`` / ``other_ion_column``: the
    feature columns of the Na and Li fractions (a fraction is zero where it equals its training minimum).
    """

    def __init__(
        self, forest: Any = None, ion_column: int = 0, other_ion_column: int = 1, min_rows: int = 20
    ) -> None:
        self.forest = forest
        self.ion_column = ion_column
        self.other_ion_column = other_ion_column
        self.min_rows = min_rows

    def _routed(self, Z: np.ndarray) -> np.ndarray:
        has = Z[:, self.ion_column] > self.zero_[0] + 1e-9
        other = Z[:, self.other_ion_column] > self.zero_[1] + 1e-9
        routed: np.ndarray = has & ~other
        return routed

    def fit(self, X: Any, y: Any) -> IonRoutedRegressor:
        Z = np.asarray(X, dtype=float)
        y_arr = np.asarray(y, dtype=float)
        if max(self.ion_column, self.other_ion_column) >= Z.shape[1]:
            raise ValueError(f"ion columns do not fit features of width {Z.shape[1]}")
        base = self.forest if self.forest is not None else RandomForestRegressor(n_estimators=100)
        self.zero_ = Z[:, [self.ion_column, self.other_ion_column]].min(axis=0)
        routed = self._routed(Z)
        self.joint_ = clone(base).fit(Z, y_arr)
        self.own_ = clone(base).fit(Z[routed], y_arr[routed]) if routed.sum() >= self.min_rows else None
        self.n_features_in_ = Z.shape[1]
        return self

    def predict_mean_std(self, X: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """Mean and spread per row: the Na forest's for routed rows, the joint forest's for the others.
        The joint forest walks only the rows it answers (a Na query used to be predicted by both forests
        and the joint answer thrown away); tree predictions are per row, so the values are the same bit
        for bit. Both forests are clones of one estimator, so both have a spread or neither; should the
        Na forest have none, its rows keep the joint forest's spread, as before."""
        from models.estimators.spread import predict_mean_std

        check_is_fitted(self, "joint_")
        Z = np.asarray(X, dtype=float)
        routed = self._routed(Z) if self.own_ is not None else np.zeros(len(Z), dtype=bool)
        if self.own_ is None or not routed.any():
            return predict_mean_std(self.joint_, Z)
        own_mean, own_std = predict_mean_std(self.own_, Z[routed])
        joint_rows = ~routed if own_std is not None else np.ones(len(Z), dtype=bool)
        mean = np.empty(len(Z), dtype=float)
        std: np.ndarray | None = np.empty(len(Z), dtype=float)
        if joint_rows.any():
            joint_mean, joint_std = predict_mean_std(self.joint_, Z[joint_rows])
            mean[joint_rows] = joint_mean
            if joint_std is None:
                std = None
            elif std is not None:
                std[joint_rows] = joint_std
        mean[routed] = own_mean
        if std is not None and own_std is not None:
            std[routed] = own_std
        return mean, std

    def predict(self, X: Any) -> np.ndarray:
        return self.predict_mean_std(X)[0]


def ion_fraction_columns(feature_set: str) -> tuple[int, int]:
    """Columns of the Na and Li fractions in a conductivity pipeline's features: the ColumnTransformer
    puts the composition features first, then the Na/Li fractions (``models.features.IonFractions``)."""
    from featurize.featuresets import get_feature_set

    n = len(get_feature_set(feature_set).feature_labels())
    return n, n + 1
