"""Cross-ion transfer features for the conductivity model: let a Li halide or thiophosphate inform its Na
analogue.

- ``MobileIonSwap``: the formula with the mobile ion replaced (Li -> Na by default), so Li3InCl6 and
  Na3InCl6 get the same framework features; the ion's identity stays visible through the Na/Li fractions
  the pipeline already has (``models.features.IonFractions``).
- ``ANION_ELEMENTS``: atomic fractions of the anion-framework formers (O, S, Se, F, Cl, Br, I, N, H, B),
  so "chloride", "oxychloride", "thiophosphate", "closo-borate" are a few splits away for a tree.

``transfer_blocks(kind)`` gives the extra ColumnTransformer blocks of a candidate (``models.training``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, TransformerMixin, clone
from sklearn.ensemble import RandomForestRegressor
from sklearn.neighbors import NearestNeighbors
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


class NeighbourOffsetRegressor(RegressorMixin, BaseEstimator):
    """A forest + a local bias correction from its own out-of-bag residuals.

    ``fit``: the forest (bootstrap, ``oob_score=True``) gives every training row an out-of-bag prediction;
    its residual ``y - oob`` says where the forest is systematically off (e.g. Na superionic halides that
    a Li- and NASICON-dominated forest puts two decades too low). ``predict``: the forest's prediction +
    the shrunk mean residual of the ``k`` nearest training rows in the (scaled) feature space,
    ``k * mean(r) / (k + shrinkage)``. This is the "pretrained on everything, offset learned locally"
    form of transfer: Li rows shape the forest; nearby Na rows correct it.
    """

    def __init__(self, forest: Any = None, k: int = 5, shrinkage: float = 1.0) -> None:
        self.forest = forest
        self.k = k
        self.shrinkage = shrinkage

    def fit(self, X: Any, y: Any) -> NeighbourOffsetRegressor:
        Z = np.asarray(X, dtype=float)
        y_arr = np.asarray(y, dtype=float)
        base = clone(self.forest) if self.forest is not None else RandomForestRegressor(n_estimators=100)
        base.set_params(bootstrap=True, oob_score=True)
        base.fit(Z, y_arr)
        oob = np.asarray(base.oob_prediction_, dtype=float)
        residual = y_arr - np.where(np.isfinite(oob), oob, y_arr)  # a row never out of bag: no evidence
        self.forest_ = base
        self.residuals_ = residual
        self.k_ = int(min(self.k, len(Z)))
        self.nn_ = NearestNeighbors(n_neighbors=self.k_).fit(Z)
        self.n_features_in_ = Z.shape[1]
        return self

    def offset(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "forest_")
        _, idx = self.nn_.kneighbors(np.asarray(X, dtype=float))
        r = self.residuals_[idx]
        return r.sum(axis=1) / (self.k_ + float(self.shrinkage))

    def predict_mean_std(self, X: Any) -> tuple[np.ndarray, np.ndarray | None]:
        from models.estimators.spread import predict_mean_std

        mean, std = predict_mean_std(self.forest_, X)
        return mean + self.offset(X), std

    def predict(self, X: Any) -> np.ndarray:
        return self.predict_mean_std(X)[0]


class ClassOffsetRegressor(RegressorMixin, BaseEstimator):
    """A forest pretrained on every row + a shrunk offset per framework class, from out-of-bag residuals.

    The class of a row is which of the ``ion_columns`` (Na, Li fractions) and ``anion_columns``
    (``ANION_ELEMENTS`` fractions) are non-zero: (Na; Cl), (Na; Cl, O), (Na; S), (Li; S, Cl), (Na; O) ...
    (a fraction column is zero where it equals its training minimum: the scaler maps 0 to that value).
    ``fit``: forest (bootstrap, ``oob_score=True``); offset of a class = sum of its out-of-bag residuals /
    (its row count + ``shrinkage``), so a class seen in a few rows moves little. ``predict``: forest +
    the offset of the row's class (0 for a class no training row has). This is the "Li-pretrained model
    with a Na offset" form of transfer: the forest learns from Li and Na rows alike; where Na halides
    or sulfides sit systematically off its predictions, their class offset corrects it.
    """

    def __init__(
        self,
        forest: Any = None,
        ion_columns: tuple[int, ...] = (),
        anion_columns: tuple[int, ...] = (),
        shrinkage: float = 5.0,
    ) -> None:
        self.forest = forest
        self.ion_columns = ion_columns
        self.anion_columns = anion_columns
        self.shrinkage = shrinkage

    def _keys(self, Z: np.ndarray) -> list[bytes]:
        cols = list(self.ion_columns) + list(self.anion_columns)
        present = Z[:, cols] > self.zero_[None, :] + 1e-9
        return [row.tobytes() for row in np.packbits(present, axis=1)]

    def fit(self, X: Any, y: Any) -> ClassOffsetRegressor:
        Z = np.asarray(X, dtype=float)
        y_arr = np.asarray(y, dtype=float)
        cols = list(self.ion_columns) + list(self.anion_columns)
        if not cols or max(cols) >= Z.shape[1]:
            raise ValueError(f"class columns {cols} do not fit features of width {Z.shape[1]}")
        base = clone(self.forest) if self.forest is not None else RandomForestRegressor(n_estimators=100)
        base.set_params(bootstrap=True, oob_score=True)
        base.fit(Z, y_arr)
        oob = np.asarray(base.oob_prediction_, dtype=float)
        residual = np.where(np.isfinite(oob), y_arr - oob, 0.0)
        self.zero_ = Z[:, cols].min(axis=0)
        keys = self._keys(Z)
        sums: dict[bytes, float] = {}
        counts: dict[bytes, int] = {}
        for key, r in zip(keys, residual, strict=True):
            sums[key] = sums.get(key, 0.0) + float(r)
            counts[key] = counts.get(key, 0) + 1
        self.offsets_ = {k: sums[k] / (counts[k] + float(self.shrinkage)) for k in sums}
        self.forest_ = base
        self.n_features_in_ = Z.shape[1]
        return self

    def offset(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "forest_")
        return np.array([self.offsets_.get(k, 0.0) for k in self._keys(np.asarray(X, dtype=float))])

    def predict_mean_std(self, X: Any) -> tuple[np.ndarray, np.ndarray | None]:
        from models.estimators.spread import predict_mean_std

        mean, std = predict_mean_std(self.forest_, X)
        return mean + self.offset(X), std

    def predict(self, X: Any) -> np.ndarray:
        return self.predict_mean_std(X)[0]


def class_offset_columns(feature_set: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(ion columns, anion columns) of a conductivity pipeline with the ``anions`` transfer block: the
    ColumnTransformer puts the composition features first, then the Na/Li fractions, then the anions."""
    from featurize.featuresets import get_feature_set

    n = len(get_feature_set(feature_set).feature_labels())
    return (n, n + 1), tuple(range(n + 2, n + 2 + len(ANION_ELEMENTS)))
