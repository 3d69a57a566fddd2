"""A loaded model for one target, answering a batch of input rows with one output row each.

``Predictor.predict_frame`` validates every row first (formula parses, required conditions present and
non-negative, a known working ion, ...), sends only the good rows to the model, and returns one row per
input row in input order: ``prediction, std, lower_90, upper_90, in_domain, domain_reason, model_version,
error``. A bad row carries its reason in ``error`` (NaN numbers, ``in_domain`` False); it never aborts the
others and never disappears.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from featurize.composition import parse_formulas
from models.features import row_errors
from models.targets import TARGETS, Prediction, TargetName

logger = logging.getLogger(__name__)

OUTPUT_COLUMNS = (
    "prediction",
    "std",
    "lower_90",
    "upper_90",
    "in_domain",
    "domain_reason",
    "model_version",
    "error",
)
_NUMERIC_OUTPUTS = ("prediction", "std", "lower_90", "upper_90")
#: ``predict_frame(df, raw=True)`` adds these: the model's unclipped mean and its raw (uncalibrated) spread
#: per row, NaN where the model offers none; relative predictions read them instead of predicting again
RAW_OUTPUTS = ("raw_mean", "raw_spread")


class PredictorLike(Protocol):
    """What the screening core and the API need from a loaded model (``Predictor`` satisfies it; so does
    any object answering ``predict_frame`` with OUTPUT_COLUMNS and naming its registry version)."""

    model_version: str

    def predict_frame(self, df: pd.DataFrame) -> pd.DataFrame: ...


class UncertainModel(Protocol):
    """What the Predictor needs from a model (``models.uncertain.UncertainRegressor`` satisfies it)."""

    def predict_with_uncertainty(self, X: pd.DataFrame) -> pd.DataFrame: ...


@dataclass
class Predictor:
    """A fitted model for ``target`` with the registry version it came from."""

    target: TargetName
    model: UncertainModel
    model_version: str
    #: answer repeated input rows once (False: every row on its own, the reference the benchmark and the
    #: tests compare with)
    deduplicate: bool = True

    def __post_init__(self) -> None:
        self.target = TargetName(self.target)

    def predict_frame(self, df: pd.DataFrame, *, raw: bool = False) -> pd.DataFrame:
        """One output row per input row (same index, same order) with the OUTPUT_COLUMNS (and, with
        ``raw``, the RAW_OUTPUTS). Repeated input rows (``distinct_rows``) are answered once."""
        return pd.DataFrame(self.predict_columns(df, raw=raw), index=df.index)

    def predict_columns(self, df: pd.DataFrame, *, raw: bool = False) -> dict[str, Any]:
        """``predict_frame``'s columns without the frame: name -> NumPy array or list, one value per row
        (the API's one-item path: building the frame and reading its columns back cost ~0.5 ms)."""
        if "formula" not in df.columns:
            raise ValueError(f"input has no 'formula' column (columns: {', '.join(map(str, df.columns))})")
        n = len(df)
        # the rows by position (0..n-1); a frame already indexed so (every API request) is used as it is:
        # reset_index copied it, ~0.12 ms of a one-row prediction. Nothing below writes to the frame.
        index = df.index
        default = isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1
        frame = df if default else df.reset_index(drop=True)
        distinct = distinct_rows(frame) if self.deduplicate else None
        if distinct is None:
            columns = self._columns(frame)
        else:  # each distinct input once, its answer copied to its repeats
            first, inverse = distinct
            answered = self._columns(frame.iloc[first].reset_index(drop=True))
            columns = {c: _take(v, inverse) for c, v in answered.items()}
        failed = sum(1 for e in columns["error"] if e)
        if failed:
            logger.info("%s: %d of %d rows could not be predicted", self.target.value, failed, n)
        names = (*OUTPUT_COLUMNS, *RAW_OUTPUTS) if raw else OUTPUT_COLUMNS
        return {c: columns[c] for c in names}

    def _columns(self, frame: pd.DataFrame) -> dict[str, Any]:
        """The output columns (OUTPUT_COLUMNS and RAW_OUTPUTS) of ``frame``'s rows (a 0..n-1 index)."""
        n = len(frame)
        numbers = {col: np.full(n, np.nan) for col in (*_NUMERIC_OUTPUTS, *RAW_OUTPUTS)}
        in_domain = np.zeros(n, dtype=bool)
        reasons = np.full(n, "", dtype=object)
        errors: list[str] = []
        if n:
            comps = parse_formulas(frame["formula"].tolist())
            errors = row_errors(self.target, frame, comps)
            good = np.array([not e for e in errors], dtype=bool)
            if good.any():
                answered = self._answer(frame if good.all() else frame.loc[good])
                for col in _NUMERIC_OUTPUTS:
                    numbers[col][good] = np.asarray(answered[col], dtype=float)
                for col in RAW_OUTPUTS if col_in(answered, RAW_OUTPUTS) else ():
                    numbers[col][good] = np.asarray(answered[col], dtype=float)
                bounds = TARGETS[self.target].value_range
                if bounds is not None:
                    for col in ("prediction", "lower_90", "upper_90"):
                        np.clip(numbers[col], *bounds, out=numbers[col])
                in_domain[good] = np.asarray(answered["in_domain"], dtype=bool)
                reasons[good] = [str(r) for r in answered["domain_reason"]]
            if not good.all():
                reasons[~good] = "not predicted: see error"
        return {
            **numbers,
            "in_domain": in_domain,
            "domain_reason": [str(r) for r in reasons],
            "model_version": [self.model_version] * n,
            "error": errors,
        }

    def _answer(self, frame: pd.DataFrame) -> Mapping[str, Any] | pd.DataFrame:
        """The model's columns for rows that passed validation: NumPy arrays when the model offers them
        (``UncertainRegressor.predict_with_uncertainty_arrays``), else its DataFrame."""
        arrays = getattr(self.model, "predict_with_uncertainty_arrays", None)
        if callable(arrays):
            result: Mapping[str, Any] = arrays(frame)
            return result
        answered: pd.DataFrame = self.model.predict_with_uncertainty(frame)
        return answered

    def predict_one(self, row: Mapping[str, object]) -> Prediction:
        """A single input as a ``Prediction``; a bad input raises ValueError with the reason."""
        result = self.predict_frame(pd.DataFrame([dict(row)])).iloc[0]
        if result["error"]:
            raise ValueError(str(result["error"]))
        return Prediction(
            target=self.target,
            value=float(result["prediction"]),
            std=float(result["std"]),
            lower_90=float(result["lower_90"]),
            upper_90=float(result["upper_90"]),
            in_domain=bool(result["in_domain"]),
            domain_reason=str(result["domain_reason"]),
            model_version=self.model_version,
        )


#: Cell types whose values are their own keys (a str never equals None)
_PLAIN_CELLS = frozenset({str, type(None)})


def _cell_key(value: object) -> object:
    """A hashable key equal for two cells exactly when they are the same input: floats by their bits (so
    NaN matches NaN and -0.0 does not match 0.0), every value with its type (True is not 1)."""
    if isinstance(value, float):
        return (type(value), value.hex())
    return (type(value), value)


def _column_keys(column: pd.Series) -> Sequence[object]:
    """``_cell_key`` of each cell, or keys equal exactly when those are, faster: a float64 column by its
    bit patterns, a column of str and None cells by the cells themselves."""
    values = column.to_numpy()
    if values.dtype == np.float64:
        bits: list[int] = values.view(np.int64).tolist()
        return bits
    cells: list[object] = values.tolist()
    if set(map(type, cells)) <= _PLAIN_CELLS:
        return cells
    return [_cell_key(v) for v in cells]


def distinct_rows(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
    """(position of the first row of each distinct input row, per row the index of its distinct row), or
    None when every row is distinct (or a cell is unhashable). Two rows are one input when every cell is
    the same value of the same type (``_cell_key``): the model answers a row from its cells alone, so a
    repeat gets the very answer (screening files and batches repeat hosts and controls)."""
    n = len(frame)
    if n < 2:
        return None
    columns = [_column_keys(frame[c]) for c in frame.columns]
    positions: dict[tuple[object, ...], int] = {}
    first: list[int] = []
    inverse = np.empty(n, dtype=np.intp)
    try:
        for i, key in enumerate(zip(*columns, strict=True)):
            pos = positions.setdefault(key, len(first))
            if pos == len(first):
                first.append(i)
            inverse[i] = pos
    except TypeError:  # an unhashable cell (a list, ...): no deduplication
        return None
    if len(first) == n:
        return None
    return np.asarray(first, dtype=np.intp), inverse


def _take(values: np.ndarray | list[Any], inverse: np.ndarray) -> np.ndarray | list[Any]:
    """``values`` (one per distinct row) once per original row: arrays stay arrays, lists stay lists."""
    if isinstance(values, np.ndarray):
        taken: np.ndarray = values[inverse]
        return taken
    return [values[j] for j in inverse.tolist()]


def col_in(answered: Mapping[str, Any] | pd.DataFrame, names: Iterable[str]) -> bool:
    """Does the model's answer carry every one of ``names`` (a mapping's keys or a frame's columns)?"""
    return all(name in answered for name in names)


def predict_columns(predictor: PredictorLike, df: pd.DataFrame) -> dict[str, Any]:
    """The OUTPUT_COLUMNS of ``predictor.predict_frame(df)`` as name -> values (one per row): straight from
    a ``Predictor``, without the DataFrame; from any other PredictorLike, read off its frame."""
    if isinstance(predictor, Predictor):
        return predictor.predict_columns(df)
    out = predictor.predict_frame(df)
    return {c: out[c].tolist() for c in OUTPUT_COLUMNS}


def predict_frame_raw(predictor: PredictorLike, df: pd.DataFrame) -> pd.DataFrame:
    """``predict_frame`` with the RAW_OUTPUTS when the predictor is a ``Predictor`` (any other
    PredictorLike answers its OUTPUT_COLUMNS only; relative predictions then predict the rows again)."""
    if isinstance(predictor, Predictor):
        return predictor.predict_frame(df, raw=True)
    return predictor.predict_frame(df)


def training_elements(predictor: object) -> frozenset[str]:
    """The elements in the training data of a predictor's model (``training_elements_`` of a fitted
    ``UncertainRegressor``; empty for a model that does not record them)."""
    model = getattr(predictor, "model", None)
    return frozenset(getattr(model, "training_elements_", ()) or ())


def load_predictors(targets: Iterable[TargetName | str], tracking_uri: str) -> dict[TargetName, Predictor]:
    """Load each target's ``champion`` once (raises ``models.tracking.NoChampionError`` if one is missing)."""
    from models.tracking import load_champion

    predictors: dict[TargetName, Predictor] = {}
    for target in targets:
        name = TargetName(target)
        if name in predictors:
            continue
        model, version = load_champion(name, tracking_uri)
        predictors[name] = Predictor(target=name, model=model, model_version=version)
    return predictors
