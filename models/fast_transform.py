"""Serving-time transform of a fitted feature pipeline, without sklearn's per-call dispatch overhead.

``Pipeline.transform`` and ``ColumnTransformer.transform`` are general: metadata routing, narwhals
container checks, column-name validation, a joblib ``Parallel`` over the transformers, the set_output
container adapter. On a one-row prediction that machinery cost ~1.5 ms of the ~4 ms feature computation,
paid on every request. ``transform_steps`` calls the same fitted transformers on the same column
selections and stacks their outputs exactly as ``ColumnTransformer`` does for dense NumPy output, so the
features are identical (tests/models/test_fast_transform.py compares them with ``Pipeline.transform`` on
every target's pipeline). A fitted ``StandardScaler`` or NaN-filling ``SimpleImputer``
(``keep_empty_features``, no indicator) on a dense float64 array does the same arithmetic as its sklearn
``transform`` without the input validation (~0.15 ms each per call). Whatever it does not recognise
(sparse output, pandas output configured, passthrough/remainder columns, array input, inf) goes through
sklearn's own ``transform``.

No frames on the way: a first step with ``transform_columns`` (``models.features.TargetInputs``) hands over
its columns as ``InputColumns`` instead of a DataFrame, and a one-column transformer with
``transform_values`` (the composition featurizer, the ion fractions, the non-oxide flag) gets the column's
str cells themselves, the one-hot encoder its cells; a frame is built only for the transformers that need
one (the retention conditions' imputers). Building the prepared frame and its two selections, and reading
them back, cost ~1 ms of a ~5 ms one-row conductivity prediction.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from scipy import sparse
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from featurize.transformer import check_fitted


@dataclass(frozen=True)
class InputColumns:
    """A frame not built yet: the columns (name -> 1-D array, in order) and the index a first step's
    ``transform_columns`` returned in place of its frame (``pd.DataFrame(columns, index=index)``, built
    by ``frame()`` only where a step needs it). The feature transformers that read one column's values
    (``transform_values``) get them straight from here."""

    columns: dict[str, np.ndarray]
    index: pd.Index

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.columns, index=self.index, copy=False)


def transform_steps(steps: Sequence[tuple[str, Any]], X: Any) -> Any:
    """``Pipeline(steps).transform(X)`` for fitted ``steps`` (no metadata-routed parameters)."""
    Xt = X
    for _name, step in steps:
        if step is None or step == "passthrough":
            continue
        if isinstance(Xt, InputColumns) and not isinstance(step, ColumnTransformer):
            Xt = Xt.frame()
        if isinstance(step, ColumnTransformer):
            Xt = column_transform(step, Xt)
        elif isinstance(X, pd.DataFrame) and Xt is X and callable(getattr(step, "transform_columns", None)):
            Xt = InputColumns(step.transform_columns(Xt), Xt.index)  # models.features.TargetInputs
        elif isinstance(step, Pipeline):
            Xt = transform_steps(step.steps, Xt)
        elif type(step) is StandardScaler and _plain_float_input(step, Xt):
            Xt = _standard_scale(step, Xt)
        elif type(step) is SimpleImputer and _plain_float_input(step, Xt) and _nan_fill_only(step):
            Xt = _impute_nan(step, Xt)
        else:
            Xt = step.transform(Xt)
    return Xt.frame() if isinstance(Xt, InputColumns) else Xt


def _plain_float_input(est: Any, X: Any) -> bool:
    """A dense, finite-or-NaN float64 2-D array of the fitted width, into a step fitted without feature
    names, copying (``copy=True``) and with NumPy output: what sklearn's own input check would pass
    unchanged. Anything else (inf, other dtypes, DataFrames) takes sklearn's path and its errors."""
    return (
        isinstance(X, np.ndarray)
        and X.dtype == np.float64
        and X.ndim == 2
        and X.shape[1] == getattr(est, "n_features_in_", -1)
        and not hasattr(est, "feature_names_in_")
        and bool(getattr(est, "copy", False))
        and _dense_default_output(est)
        and not np.isinf(X).any()
    )


def _nan_fill_only(imputer: SimpleImputer) -> bool:
    missing = imputer.missing_values
    return (
        bool(imputer.keep_empty_features)
        and not imputer.add_indicator
        and isinstance(missing, float)
        and np.isnan(missing)
        and getattr(imputer, "statistics_", None) is not None
        and imputer.statistics_.dtype.kind == "f"
    )


def _standard_scale(scaler: StandardScaler, X: np.ndarray) -> np.ndarray:
    """``StandardScaler.transform`` for dense float64: the same in-place subtract and divide on a copy."""
    check_fitted(scaler, "scale_")
    out = X.copy()
    if scaler.with_mean:
        out -= scaler.mean_.astype(out.dtype)
    if scaler.with_std:
        out /= scaler.scale_.astype(out.dtype)
    return out


def _impute_nan(imputer: SimpleImputer, X: np.ndarray) -> np.ndarray:
    """``SimpleImputer.transform`` with ``keep_empty_features`` and no indicator: each NaN becomes its
    column's fitted statistic, on a copy."""
    check_fitted(imputer, "statistics_")
    out = X.copy()
    rows, cols = np.nonzero(np.isnan(out))
    out[rows, cols] = imputer.statistics_.astype(out.dtype)[cols]
    return out


def _dense_default_output(est: Any) -> bool:
    config = getattr(est, "_sklearn_output_config", {}).get("transform")
    if config is None:
        config = sklearn.get_config()["transform_output"]
    return bool(config == "default")


def column_transform(ct: ColumnTransformer, X: Any) -> Any:
    """``ct.transform(X)``; a DataFrame (or ``InputColumns``) into a fitted, dense, NumPy-output
    ColumnTransformer whose transformers all select columns by name takes the direct path (each
    transformer on its columns, then ``np.hstack``), anything else sklearn's ``transform``."""
    check_fitted(ct, "transformers_")
    if isinstance(X, InputColumns) and not _direct_path(ct, X.columns):
        X = X.frame()
    if not isinstance(X, pd.DataFrame | InputColumns) or not _direct_path(ct, X.columns):
        return ct.transform(X)
    blocks = [(trans, list(columns)) for _, trans, columns in ct.transformers_ if _selects(trans, columns)]
    missing = {c for _, cols in blocks for c in cols} - set(X.columns)
    if missing or not blocks:
        return ct.transform(_as_frame(X))  # sklearn raises its own "columns are missing" error
    selections = _Selections(X)
    outputs = []
    for trans, cols in blocks:
        numeric = _numeric_block(trans, cols, selections)
        if numeric is not None:
            out = numeric
        elif type(trans) is OneHotEncoder and len(cols) == 1:
            out = one_hot(trans, selections.values(cols[0]), partial(selections.frame, cols))
        elif len(cols) == 1 and callable(getattr(trans, "transform_values", None)):
            values = selections.plain_values(cols[0])
            out = (
                trans.transform(selections.frame(cols)) if values is None else trans.transform_values(values)
            )
        else:
            out = trans.transform(selections.frame(cols))
        if sparse.issparse(out) or not isinstance(out, np.ndarray) or out.ndim != 2:
            return ct.transform(_as_frame(X))
        if out.shape[0] != selections.n:
            return ct.transform(_as_frame(X))  # sklearn reports the inconsistent transformer
        outputs.append(out)
    return np.hstack(outputs)


def _direct_path(ct: ColumnTransformer, columns: Any) -> bool:
    """Can ``column_transform`` select ``ct``'s columns itself: fitted on a frame, dense NumPy output,
    every transformer a fitted estimator (or "drop") selecting a list of column names?"""
    if (
        not hasattr(ct, "feature_names_in_")
        or getattr(ct, "sparse_output_", True)
        or not _dense_default_output(ct)
    ):
        return False
    for _name, trans, cols in ct.transformers_:
        if isinstance(trans, str) and trans == "drop":
            continue
        if isinstance(trans, str) or not _column_names(cols):
            return False  # passthrough, callables, masks, positions: sklearn's own path
    return True


def _selects(trans: Any, columns: Any) -> bool:
    return not (isinstance(trans, str) and trans == "drop") and len(columns) > 0


def _as_frame(X: pd.DataFrame | InputColumns) -> pd.DataFrame:
    return X.frame() if isinstance(X, InputColumns) else X


def _numeric_block(trans: Any, cols: list[str], selections: _Selections) -> np.ndarray | None:
    """``trans.transform(frame of cols)`` for the conditions' transformers, without sklearn's per-call
    validation (~2 ms each on a one-row retention predict: check_array, feature-name checks through
    narwhals, the MissingIndicator's own checks): a ``SimpleImputer`` (``_imputed``), or a Pipeline of a
    NumPy-ufunc ``FunctionTransformer`` (the log of cycles and current) then such an imputer, on float64
    columns that are finite or NaN. None: anything else, which goes through ``trans.transform``."""
    steps = trans.steps if type(trans) is Pipeline and _dense_default_output(trans) else [(None, trans)]
    if len(steps) > 2 or not all(_dense_default_output(step) for _, step in steps):
        return None
    func = None
    if len(steps) == 2:
        first = steps[0][1]
        if type(first) is not FunctionTransformer or first.validate or first.kw_args:
            return None
        func = first.func
        if not isinstance(func, np.ufunc) or func.nin != 1:
            return None
    imputer = steps[-1][1]
    if type(imputer) is not SimpleImputer or list(getattr(imputer, "feature_names_in_", ())) != cols:
        return None
    values = selections.float_matrix(cols)
    if values is None:
        return None
    if func is not None:
        with np.errstate(all="ignore"):  # NumPy warns as pandas would; the result is checked below
            values = func(values)
        if values.dtype != np.float64:
            return None
    if np.isinf(values).any():
        return None  # sklearn's check raises its own error
    return _imputed(imputer, values)


def _imputed(imputer: SimpleImputer, values: np.ndarray) -> np.ndarray | None:
    """``SimpleImputer.transform`` (sklearn 1.9's dense path) of a fresh float64 (n, k) matrix that is
    finite or NaN: each NaN gets its column's statistic, then (``add_indicator``) the missing-value mask
    of the columns the indicator was fitted for is appended, as sklearn's ``np.hstack`` does. None (sklearn
    decides) for a statistic that is NaN (sklearn warns and drops the column), a missing marker other
    than NaN, a sparse indicator or an indicator that is not the imputer's own precomputed one."""
    check_fitted(imputer, "statistics_")
    statistics = imputer.statistics_
    missing_value = imputer.missing_values
    if not (isinstance(missing_value, float) and np.isnan(missing_value)) or not imputer.copy:
        return None
    if statistics.dtype.kind != "f" or statistics.shape != (values.shape[1],) or np.isnan(statistics).any():
        return None
    indicator = getattr(imputer, "indicator_", None) if imputer.add_indicator else None
    if imputer.add_indicator and (
        indicator is None
        or not getattr(indicator, "_precomputed", False)
        or indicator.sparse not in (False, "auto")
        or indicator.features not in ("missing-only", "all")
    ):
        return None
    missing = np.isnan(values)
    rows, columns = np.nonzero(missing)
    values[rows, columns] = statistics.astype(getattr(imputer, "_fill_dtype", values.dtype))[columns]
    if indicator is None:
        return values
    if indicator.features == "missing-only" and indicator.features_.size < indicator._n_features:
        missing = missing[:, indicator.features_]
    return np.hstack((values, missing))


class _Selections:
    """The column selections of one ``column_transform`` call, each made once: frames
    (``select_columns``, or from ``InputColumns`` the frame of those arrays) and one column's values."""

    def __init__(self, X: pd.DataFrame | InputColumns) -> None:
        self._X = X
        self._frames: dict[tuple[str, ...], pd.DataFrame] = {}
        self.n = len(X.index)

    def frame(self, cols: list[str]) -> pd.DataFrame:
        key = tuple(cols)
        part = self._frames.get(key)
        if part is None:
            X = self._X
            if isinstance(X, InputColumns):
                part = pd.DataFrame({c: X.columns[c] for c in cols}, index=X.index, copy=False)
            else:
                part = select_columns(X, cols)
            self._frames[key] = part
        return part

    def values(self, col: str) -> list[Any]:
        """The column's cells as Python objects (``frame([col]).iloc[:, 0].tolist()``)."""
        X = self._X
        if isinstance(X, InputColumns) and X.columns[col].dtype == object:
            return list(X.columns[col].tolist())
        return list(self.frame([col]).iloc[:, 0].tolist())

    def float_matrix(self, cols: list[str]) -> np.ndarray | None:
        """The columns as a new (n, len(cols)) float64 matrix when each is a float64 column, else None."""
        X = self._X
        arrays = [X.columns[c] if isinstance(X, InputColumns) else X[c].to_numpy() for c in cols]
        if not all(isinstance(a, np.ndarray) and a.dtype == np.float64 and a.ndim == 1 for a in arrays):
            return None
        return np.column_stack(arrays) if arrays else None

    def plain_values(self, col: str) -> list[Any] | None:
        """The column's cells when they are all str in an object column: the very objects the
        one-column frame holds (pandas infers nothing from str cells). None otherwise (the frame)."""
        X = self._X
        column = X.columns[col] if isinstance(X, InputColumns) else X[col].to_numpy()
        if column.dtype != object:
            return None
        cells: list[Any] = column.tolist()
        return cells if all(type(c) is str for c in cells) else None


def select_columns(X: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """``X[cols]``: the same columns (same dtypes, same index, in that order) as a new frame, built from
    the column Series in one constructor call when the columns of ``X`` are unique strings. ``X[cols]``
    goes through pandas' general indexer (``take`` on the block manager) and cost ~0.4 ms per call on a
    one-row frame against ~0.07 ms (two selections per one-row prediction); the frames are equal
    (tests/models/test_fast_transform.py)."""
    if not X.columns.is_unique or len(set(cols)) != len(cols):
        return X[cols]
    return pd.DataFrame({c: X[c] for c in cols}, index=X.index, copy=False)


#: Per fitted one-column OneHotEncoder, its own output row for each known category (str) met so far; kept
#: beside the object (a WeakKeyDictionary), so the pickled model is unchanged.
_ONE_HOT_ROWS: weakref.WeakKeyDictionary[OneHotEncoder, dict[str, np.ndarray]] = weakref.WeakKeyDictionary()


def one_hot(encoder: OneHotEncoder, values: list[Any], frame: Callable[[], pd.DataFrame]) -> Any:
    """``encoder.transform(frame())`` for a dense one-column encoder, from the encoder's own output row
    per category (``values``: the column's cells): each row's encoding depends on its value alone, so a
    row computed once by sklearn for a known category is that category's row (~0.5 ms of validation per
    call saved on one row). A value that is not a str known category (unknown, missing) sends the whole
    call to sklearn (on ``frame()``), with its warnings."""
    check_fitted(encoder, "categories_")
    if (
        len(values) == 0
        or encoder.sparse_output
        or not _dense_default_output(encoder)
        or len(encoder.categories_) != 1
    ):
        return encoder.transform(frame())
    rows = _ONE_HOT_ROWS.get(encoder)
    if rows is None:
        rows = _ONE_HOT_ROWS[encoder] = {}
    known = encoder.categories_[0]
    for value in set(values) if len(values) > 1 else values:
        if value in rows:
            continue
        if not isinstance(value, str) or value not in set(known.tolist()):
            return encoder.transform(frame())
        name = frame().columns[0]
        rows[value] = np.asarray(encoder.transform(pd.DataFrame({name: [value]})))[0]
    return np.stack([rows[v] for v in values])


def _column_names(columns: Any) -> bool:
    return isinstance(columns, list) and all(isinstance(c, str) for c in columns)
