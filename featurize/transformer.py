"""Formulas in, feature matrix out: a batch API that reports bad rows, and an sklearn transformer.

Two ways in, one policy for bad rows (a formula that does not parse is never a silent NaN row):

``featurize_formulas(formulas, "magpie_v1") -> FeatureBatch(X, ok, errors, feature_names)``
    The batch API (the CLI and prediction code use it). Every input row gets an output row in input
    order; ``ok[i]`` says whether row i parsed, ``errors[i]`` is "" or the reason
    (``'"Na2XyO3": unknown element Xy'``), and ``X[i]`` is NaN for a failed row. Nothing else aborts.

``CompositionFeaturizer(feature_set="magpie_v1", formula_column="formula", on_error="raise")``
    sklearn transformer (Pipeline, ColumnTransformer, clone, cloudpickle). ``on_error="raise"``: the first
    bad row raises ``CompositionError`` naming the row index and the input. ``on_error="mask"``: bad rows
    come back as NaN rows AND are reported: a ``FeaturizationWarning`` lists them with reasons, and
    ``errors_`` holds ``{row index: reason}`` of the last ``transform``. Code that must act on bad rows
    should call ``transform_batch`` (a ``FeatureBatch``) instead of reading NaNs.

Parsing is done once per distinct input string per call (screening batches repeat host formulas a lot),
and features once per distinct composition, then scattered back to the rows.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from featurize.composition import Composition, CompositionError, parse_formula, parse_formulas
from featurize.featuresets import get_feature_set, resolve_name

logger = logging.getLogger(__name__)

OnError = Literal["raise", "mask"]


class FeaturizationWarning(UserWarning):
    """Some rows could not be featurised and were masked (their reasons are in the message)."""


@dataclass(frozen=True)
class FeatureBatch:
    """Features of a batch of formulas, one row per input row, in input order."""

    X: np.ndarray  # (n, n_features) float64; NaN rows where ok is False
    ok: np.ndarray  # (n,) bool
    errors: list[str]  # (n,) "" for ok rows, else the reason the row failed
    feature_names: list[str]

    @property
    def n_failed(self) -> int:
        return int((~self.ok).sum())

    def failures(self) -> dict[int, str]:
        """``{row index: reason}`` of the failed rows."""
        return {i: e for i, e in enumerate(self.errors) if e}

    def to_frame(self, index: Any = None) -> pd.DataFrame:
        """Features as a DataFrame with matminer's labels and an ``error`` column ("" when ok)."""
        frame = pd.DataFrame(self.X, columns=self.feature_names, index=index)
        frame["error"] = self.errors
        return frame


def check_fitted(estimator: Any, attribute: str) -> None:
    """``check_is_fitted(estimator, attribute)``: a fitted attribute in the instance's own ``__dict__``
    passes at once (what sklearn's check concludes from it), without that check's per-call tag lookup
    (~25 us, paid several times per one-row prediction); otherwise sklearn's check and its error."""
    if attribute not in getattr(estimator, "__dict__", ()):
        check_is_fitted(estimator, attribute)


def _key(value: object) -> object:
    # Strings are deduplicated on their exact text; anything else (NaN, None, numbers) is parsed per row
    # so that each gets its own error message.
    return value if isinstance(value, str) else ("__row__", id(value))


def parse_unique(formulas: Sequence[object]) -> tuple[list[Composition | CompositionError], np.ndarray]:
    """Parse each distinct input once. Returns the distinct results and, per row, its index into them."""
    positions: dict[object, int] = {}
    distinct: list[object] = []
    inverse = np.empty(len(formulas), dtype=np.int64)
    for i, value in enumerate(formulas):
        key = _key(value)
        pos = positions.get(key)
        if pos is None:
            pos = positions[key] = len(distinct)
            distinct.append(value)
        inverse[i] = pos
    return parse_formulas(distinct), inverse


def featurize_formulas(
    formulas: Sequence[object], feature_set: str = "magpie_v1", *, reference: bool = False
) -> FeatureBatch:
    """Featurise formulas; never raises for a bad row (see ``FeatureBatch``).

    ``reference=True`` computes with matminer's own featurizers instead of the fast path (slow; for
    checking).
    """
    fs = get_feature_set(feature_set)
    labels = list(fs.labels())
    results, inverse = parse_unique(list(formulas))
    good = [i for i, r in enumerate(results) if isinstance(r, Composition)]
    comps = [r for r in results if isinstance(r, Composition)]
    distinct_x = np.full((len(results), len(labels)), np.nan, dtype=np.float64)
    if comps:
        distinct_x[good] = fs.compute_reference(comps) if reference else fs.compute(comps)
    distinct_ok = np.array([isinstance(r, Composition) for r in results], dtype=bool)
    distinct_err = ["" if isinstance(r, Composition) else str(r) for r in results]
    return FeatureBatch(
        X=distinct_x[inverse],
        ok=distinct_ok[inverse],
        errors=[distinct_err[j] for j in inverse],
        feature_names=labels,
    )


class CompositionFeaturizer(TransformerMixin, BaseEstimator):
    """sklearn transformer from formulas to a named feature set (see the module docstring).

    Parameters
    ----------
    feature_set : versioned or short name ("magpie_v1", "magpie", "composite_v1", ...).
    formula_column : column read when X is a DataFrame.
    on_error : "raise" (CompositionError naming the row) or "mask" (NaN row + warning + ``errors_``).

    X may be a DataFrame with ``formula_column``, a Series, a 1-D sequence of formulas, or an (n, 1)
    array (what ColumnTransformer passes for a one-column selection).
    """

    def __init__(
        self, feature_set: str = "magpie_v1", formula_column: str = "formula", on_error: OnError = "raise"
    ) -> None:
        self.feature_set = feature_set
        self.formula_column = formula_column
        self.on_error = on_error

    def _validate_params_(self) -> None:
        if self.on_error not in ("raise", "mask"):
            raise ValueError(f"on_error must be 'raise' or 'mask', got {self.on_error!r}")
        resolve_name(self.feature_set)

    def _formulas(self, X: Any) -> list[object]:
        if isinstance(X, pd.DataFrame):
            if self.formula_column in X.columns:
                return list(X[self.formula_column])
            if X.shape[1] == 1:
                return list(X.iloc[:, 0])
            raise ValueError(
                f"input has no {self.formula_column!r} column (columns: {', '.join(map(str, X.columns))})"
            )
        if isinstance(X, pd.Series):
            return list(X)
        if isinstance(X, str):
            raise TypeError("X must be a sequence of formulas, not a single string; wrap it in a list")
        arr = np.asarray(X, dtype=object)
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise ValueError(f"expected a 1-D sequence of formulas or one column, got shape {arr.shape}")
        return list(arr)

    def fit(self, X: Any, y: Any = None) -> CompositionFeaturizer:
        """Stateless: validates the parameters and records the feature set's name and labels."""
        self._validate_params_()
        fs = get_feature_set(self.feature_set)
        self.feature_set_name_ = fs.name
        self.feature_names_out_ = np.asarray(fs.feature_labels(), dtype=object)
        self.n_features_out_ = len(self.feature_names_out_)
        return self

    def transform_batch(self, X: Any) -> FeatureBatch:
        """Features with the per-row ``ok`` mask and reasons; never raises for a bad row."""
        check_is_fitted(self, "feature_names_out_")
        return featurize_formulas(self._formulas(X), self.feature_set_name_)

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "feature_names_out_")
        return self.transform_values(self._formulas(X))

    def transform_values(self, formulas: Sequence[object]) -> np.ndarray:
        """``transform`` of the formulas themselves (one column's values): what a ColumnTransformer's
        one-column selection holds, without the frame (``models.fast_transform``)."""
        check_fitted(self, "feature_names_out_")
        formulas = list(formulas)
        batch = featurize_formulas(formulas, self.feature_set_name_)
        failures = batch.failures()
        if failures and self.on_error == "raise":
            row = next(iter(failures))
            more = f"; {len(failures) - 1} more bad rows" if len(failures) > 1 else ""
            try:
                parse_formula(formulas[row])
            except CompositionError as exc:
                raise CompositionError(exc.text, f"{exc.problem} (row {row}{more})") from exc
            raise CompositionError(formulas[row], f"{failures[row]} (row {row}{more})")
        self.errors_ = failures
        if failures:
            shown = "; ".join(f"row {i}: {e}" for i, e in list(failures.items())[:5])
            message = f"{len(failures)} of {len(batch.ok)} rows could not be featurised and are NaN: {shown}"
            logger.warning(message)
            warnings.warn(message, FeaturizationWarning, stacklevel=2)
        return batch.X

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "feature_names_out_")
        return np.asarray(self.feature_names_out_, dtype=object)
