"""Cross-ion transfer features for the conductivity model: let a Li halide or thiophosphate inform its Na
analogue.

- ``MobileIonSwap``: the formula with the mobile ion replaced (Li -> Na by default), so Li3InCl6 and
  Na3InCl6 get the same framework features; the ion's identity stays visible through the Na/Li fractions
  the pipeline already has (``models.features.IonFractions``).
- ``ANION_ELEMENTS``: atomic fractions of the anion-framework formers (O, S, Se, F, Cl, Br, I, N, H, B),
  so "chloride", "oxychloride", "thiophosphate", "closo-borate" are a few splits away for a tree.
- ``FrameworkCations``: the amount-weighted mean oxidation state of the framework (non-mobile) cations,
  from ``featurize.oxidation``'s charge balance (La3+ in Na0.75La1.75Cl6, 3.62 in NaLa0.95Ta0.43Cl6, Zr4+ in
  Na2ZrCl6), the lead for a pristine La3+ chloride predicted like its Ta5+-substituted neighbours; measured
  (transfer kind ``framework+cations``) and not adopted: halide MAE 1.091 vs 1.101, the row still 3.8
  decades off, the Na and OBELiX guards worse (CHANGELOG, issue 9).
- ``IonRoutedRegressor``: one forest per mobile ion (what the grouped-CV comparison kept, see its docstring),
  and optionally one for the Na rows with a non-oxide anion framework (``NonOxideFramework`` flag).

``transfer_blocks(kind)`` gives the extra ColumnTransformer blocks of a candidate (``models.training``).
Measured and not adopted (CHANGELOG): the two feature blocks, a per-class offset on out-of-bag residuals,
a k-nearest-neighbour residual offset, Li rows with the ion swapped added to the Na forest and a shrinkage
towards the chemistry class's mean (``benchmarks/na_forest_variants.py``); none beat the routed forest.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, TransformerMixin, clone
from sklearn.ensemble import RandomForestRegressor
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted, validate_data

from featurize.composition import Composition, CompositionError, parse_formula
from featurize.oxidation import charge_balance_batch
from featurize.transformer import CompositionFeaturizer, check_fitted

ANION_ELEMENTS = ("O", "S", "Se", "F", "Cl", "Br", "I", "N", "H", "B")
#: anion-framework formers other than oxygen: a composition with one of them is a halide, oxyhalide,
#: sulfide, selenide, nitride or hydroborate framework, not an oxide (NASICON, beta-alumina)
NON_OXIDE_ANIONS = tuple(e for e in ANION_ELEMENTS if e != "O")
TRANSFER_KINDS = ("none", "anions", "swap", "swap+anions", "framework", "framework+cations")
#: the mobile ions whose cations are not framework cations (``FrameworkCations``)
MOBILE_IONS = ("Na", "Li")


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


class _FormulaColumnFeature(TransformerMixin, BaseEstimator):
    """A stateless formula column -> numeric column(s) transformer: ``fit`` only records the one input
    column; ``transform`` is ``transform_values`` of the column's values (``models.fast_transform`` calls
    that directly, with no frame)."""

    def fit(self, X: Any, y: Any = None) -> Self:
        self.n_features_in_ = 1
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "n_features_in_")
        formulas = X.iloc[:, 0] if isinstance(X, pd.DataFrame) else np.asarray(X, dtype=object).reshape(-1)
        return self.transform_values(formulas)

    def transform_values(self, formulas: Sequence[object] | pd.Series | np.ndarray) -> np.ndarray:
        raise NotImplementedError


class NonOxideFramework(_FormulaColumnFeature):
    """Formula column -> one column, 1.0 when the composition holds a non-oxide anion former
    (``NON_OXIDE_ANIONS``), else 0.0 (NaN for an unparseable formula: the composition featurizer reports
    it). Stateless; the routing flag of ``IonRoutedRegressor(framework_column=...)``."""

    def transform_values(self, formulas: Sequence[object] | pd.Series | np.ndarray) -> np.ndarray:
        """``transform`` of the formula column's values (``models.fast_transform``: no frame needed)."""
        check_fitted(self, "n_features_in_")
        out = np.full((len(formulas), 1), np.nan)
        for i, formula in enumerate(formulas):
            try:
                elements = set(parse_formula(formula).elements)
            except CompositionError:
                continue
            out[i, 0] = float(any(e in elements for e in NON_OXIDE_ANIONS))
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(["non-oxide framework"], dtype=object)


class FrameworkCations(_FormulaColumnFeature):
    """Formula column -> the framework cations' mean oxidation state: the amount-weighted mean of the
    positive states (``featurize.oxidation.charge_balance_batch``, O at -2 as in the domain's anion sets)
    of every element but the mobile ions (``MOBILE_IONS``). NaN when a formula does not parse or has no such
    cation (the pipeline's imputer fills it). Stateless."""

    def transform_values(self, formulas: Sequence[object] | pd.Series | np.ndarray) -> np.ndarray:
        """``transform`` of the formula column's values (``models.fast_transform``: no frame needed)."""
        check_fitted(self, "n_features_in_")
        out = np.full((len(formulas), 1), np.nan)
        comps: dict[int, Composition] = {}
        for i, formula in enumerate(formulas):
            try:
                comps[i] = parse_formula(formula)
            except CompositionError:
                continue
        if not comps:
            return out
        columns = sorted({e for c in comps.values() for e in c.elements})
        index = {e: j for j, e in enumerate(columns)}
        amounts = np.zeros((len(comps), len(columns)))
        for r, comp in enumerate(comps.values()):
            amounts[r, [index[e] for e in comp.elements]] = comp.amounts
        states, _balanced = charge_balance_batch(columns, amounts, allow_peroxide=False)
        framework = np.array([e not in MOBILE_IONS for e in columns])
        cation = np.nan_to_num(states, nan=0.0) > 0.0
        weight = np.where(cation & framework, amounts, 0.0)
        total = weight.sum(axis=1)
        charge = (weight * np.nan_to_num(states, nan=0.0)).sum(axis=1)
        out[list(comps), 0] = np.where(total > 0, charge / np.where(total > 0, total, 1.0), np.nan)
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(["framework cation oxidation state"], dtype=object)


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
    if kind.startswith("framework"):
        blocks.append(("framework", NonOxideFramework(), ["formula"]))
    if kind == "framework+cations":  # after the flag: ``framework_column`` stays where it was
        blocks.append(("framework_cations", FrameworkCations(), ["formula"]))
    return blocks


class IonRoutedRegressor(RegressorMixin, BaseEstimator):
    """One forest per mobile ion: rows with Na and without Li are fitted and predicted by a forest trained
    on those rows only; every other row (Li, mixed, neither) by a forest trained on all rows.

    Measured (grouped CV by source, Na rows held out): Li rows in training made the Na predictions worse
    (Na beyond NASICON: MAE 1.21 joint vs 1.00 Na-only; all Na rows 0.94 vs 0.89): a Li aluminate or
    thiophosphate pulls a Na analogue towards the Li value. ``ion_column`` / ``other_ion_column``: the
    feature columns of the Na and Li fractions (a fraction is zero where it equals its training minimum).

    ``framework_column`` (optional, the ``NonOxideFramework`` flag): the routed rows with a non-oxide anion
    framework (halides, oxyhalides, sulfides, hydroborates) are answered by a third forest trained on the
    routed non-oxide rows only (when there are ``min_rows``), the routed oxides (NASICON, beta-alumina) by the
    Na forest; the flag column is not a feature of any forest, so the joint forest, and every Li or mixed
    answer, is the same as without it. Measured (``benchmarks/na_forest_variants.py``): the NASICON oxides
    pulled the Na halides and oxyhalides towards oxide values, as the Li rows pulled the Na rows.
    """

    def __init__(
        self,
        forest: Any = None,
        ion_column: int = 0,
        other_ion_column: int = 1,
        min_rows: int = 20,
        framework_column: int | None = None,
    ) -> None:
        self.forest = forest
        self.ion_column = ion_column
        self.other_ion_column = other_ion_column
        self.min_rows = min_rows
        self.framework_column = framework_column

    def _routed(self, Z: np.ndarray) -> np.ndarray:
        has = Z[:, self.ion_column] > self.zero_[0] + 1e-9
        other = Z[:, self.other_ion_column] > self.zero_[1] + 1e-9
        routed: np.ndarray = has & ~other
        return routed

    def _assign(self, Z: np.ndarray) -> np.ndarray:
        """Which forest answers each row: 0 joint, 1 Na (``own_``), 2 Na non-oxide (``framework_``)."""
        out = np.zeros(len(Z), dtype=int)
        if self.own_ is None:
            return out
        routed = self._routed(Z)
        out[routed] = 1
        column = getattr(self, "framework_column", None)  # a model pickled before it has none
        if getattr(self, "framework_", None) is not None and column is not None:
            flag = Z[:, column] > self.framework_zero_ + 1e-9
            out[routed & flag] = 2
        return out

    def _inputs(self, Z: np.ndarray) -> np.ndarray:
        """The forests' features: every column but the framework flag."""
        column = getattr(self, "framework_column", None)
        return Z if column is None else np.delete(Z, column, axis=1)

    def fit(self, X: Any, y: Any) -> IonRoutedRegressor:
        Z, y_arr = validate_data(self, X, y, y_numeric=True, dtype=np.float64)
        used = [self.ion_column, self.other_ion_column]
        if self.framework_column is not None:
            used.append(self.framework_column)
        if max(used) >= Z.shape[1]:
            raise ValueError(f"ion or framework columns do not fit the features (n_features = {Z.shape[1]})")
        base = self.forest if self.forest is not None else RandomForestRegressor(n_estimators=100)
        self.zero_ = Z[:, [self.ion_column, self.other_ion_column]].min(axis=0)
        routed = self._routed(Z)
        F = self._inputs(Z)
        self.joint_ = clone(base).fit(F, y_arr)
        self.own_ = clone(base).fit(F[routed], y_arr[routed]) if routed.sum() >= self.min_rows else None
        self.framework_ = None
        if self.framework_column is not None:
            self.framework_zero_ = float(Z[:, self.framework_column].min())
            framed = routed & (Z[:, self.framework_column] > self.framework_zero_ + 1e-9)
            if self.own_ is not None and framed.sum() >= self.min_rows:
                self.framework_ = clone(base).fit(F[framed], y_arr[framed])
        return self

    def predict_mean_std(self, X: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """Mean and spread per row from the forest that answers it (``_assign``); each forest walks only
        its own rows (tree predictions are per row, so the values are those of predicting every row with
        every forest and keeping each row's answer, bit for bit). The forests are clones of one estimator,
        so all have a spread or none; without one the answer has no spread."""
        from models.estimators.spread import plain_finite_input, predict_mean_std

        check_fitted(self, "joint_")
        # sklearn's check (tags, feature names, finiteness: ~0.2 ms of a one-row predict) passes a plain
        # finite float64 array of the fitted width unchanged; anything else takes it and its errors
        Z = X if plain_finite_input(self, X) else validate_data(self, X, reset=False, dtype=np.float64)
        which = self._assign(Z)
        F = self._inputs(Z)
        forests = (self.joint_, self.own_, getattr(self, "framework_", None))
        mean = np.empty(len(Z), dtype=float)
        std: np.ndarray | None = np.empty(len(Z), dtype=float)
        for k, est in enumerate(forests):
            rows = which == k
            if est is None or not rows.any():
                continue
            m, s = predict_mean_std(est, F[rows])
            mean[rows] = m
            if s is None:
                std = None
            elif std is not None:
                std[rows] = s
        return mean, std

    def predict(self, X: Any) -> np.ndarray:
        return self.predict_mean_std(X)[0]


def framework_column(feature_set: str) -> int:
    """Column of the ``NonOxideFramework`` flag in a conductivity pipeline with ``transfer="framework"``:
    right after the Na/Li fractions."""
    return ion_fraction_columns(feature_set)[1] + 1


def ion_fraction_columns(feature_set: str) -> tuple[int, int]:
    """Columns of the Na and Li fractions in a conductivity pipeline's features: the ColumnTransformer
    puts the composition features first, then the Na/Li fractions (``models.features.IonFractions``)."""
    from featurize.featuresets import get_feature_set

    n = len(get_feature_set(feature_set).feature_labels())
    return n, n + 1
