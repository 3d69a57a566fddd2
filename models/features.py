"""Per-target model inputs and the one pipeline builder that turns them into features.

The pipeline IS the model artifact (wrapped by ``UncertainRegressor``), so training and serving cannot
compute features differently:

    TargetInputs(target)                         # normalise the input frame (shared by fit and predict)
    -> ColumnTransformer(
         composition: CompositionFeaturizer(feature set) on ``formula``
         ions:        atomic fractions of the mobile/working ions (conductivity: Na, Li)
         conditions:  log1p / identity, median imputation + missing-indicator (retention)
         categories:  one-hot with "unknown" (retention structure_type, voltage working_ion))
    -> SimpleImputer(median) -> StandardScaler -> regressor

Inputs per target (``INPUT_SPECS``):
- ionic_conductivity: ``formula`` + ``phase`` (optional: crystalline, amorphous, glass, glass-ceramic or
  unknown, the default; ``models.phase``). Na vs Li enters as the Na and Li atomic fractions of the formula
  (a mobile-ion feature derived from the formula itself, so no extra input column is needed).
- capacity_retention: ``formula`` + ``cycles`` (required, >= 0) + ``current_mA_g``, ``voltage_low_V``,
  ``voltage_high_V`` (optional, imputed with a missing indicator) + ``structure_type`` (optional; taken from
  a polymorph prefix of the formula, "P2-Na0.67MnO2", when the column is absent or empty).
- average_voltage: ``formula`` (discharged) + ``working_ion`` (optional, default "Na").
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted

from featurize.composition import Composition, CompositionError, parse_formula
from featurize.transformer import CompositionFeaturizer, check_fitted
from models.phase import PHASE_COLUMN, normalize_phase
from models.targets import TargetName

UNKNOWN = "unknown"
DEFAULT_WORKING_ION = "Na"
# Working ions the voltage model knows (Materials Project insertion electrodes).
WORKING_IONS = ("Li", "Na", "K", "Rb", "Cs", "Mg", "Ca", "Zn", "Al", "Y")


@dataclass(frozen=True)
class InputSpec:
    """What a target's model reads from an input frame."""

    target: TargetName
    required_numeric: tuple[str, ...] = ()
    optional_numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    ion_fractions: tuple[str, ...] = ()
    log_columns: tuple[str, ...] = ()

    @property
    def numeric(self) -> tuple[str, ...]:
        return self.required_numeric + self.optional_numeric

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns a prepared frame has (formula first)."""
        return ("formula", *self.numeric, *self.categorical)


INPUT_SPECS: dict[TargetName, InputSpec] = {
    TargetName.IONIC_CONDUCTIVITY: InputSpec(
        target=TargetName.IONIC_CONDUCTIVITY,
        categorical=(PHASE_COLUMN,),
        ion_fractions=("Na", "Li"),
    ),
    TargetName.CAPACITY_RETENTION: InputSpec(
        target=TargetName.CAPACITY_RETENTION,
        required_numeric=("cycles",),
        optional_numeric=("current_mA_g", "voltage_low_V", "voltage_high_V"),
        categorical=("structure_type",),
        log_columns=("cycles", "current_mA_g"),
    ),
    TargetName.AVERAGE_VOLTAGE: InputSpec(
        target=TargetName.AVERAGE_VOLTAGE,
        categorical=("working_ion",),
    ),
}


def input_spec(target: TargetName | str) -> InputSpec:
    return INPUT_SPECS[TargetName(target)]


# A plain ASCII decimal: "100", "-0.5", ".5", "1e3"; "inf"/"nan" are read so they can be reported as not
# finite. Not numbers: "1_000" (Python's float() takes it), non-ASCII digits, "0x10", "1,5".
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:inf|infinity|nan)", re.ASCII | re.I)


def parse_number(value: object) -> float:
    """The one rule for reading a numeric input (``cycles``, ``current_mA_g``, ...), used by validation
    (``row_errors``) and by the model's inputs (``prepare_inputs``) alike: a real number (not a bool), or
    text that is a plain ASCII decimal, surrounding spaces allowed. Raises ValueError otherwise."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_):
        return float(value)
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        return float(value)
    raise ValueError(f"{value!r} is not a number")


def _number_or_nan(value: object) -> float:
    try:
        return parse_number(value)
    except ValueError:
        return np.nan


def _numeric(series: pd.Series) -> pd.Series:
    # Row validation (row_errors) reports what parse_number refuses; here it only becomes NaN for the imputer.
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        return series.astype(float)
    return pd.Series([_number_or_nan(v) for v in series], index=series.index, dtype=float)


def prepare_inputs(target: TargetName | str, df: pd.DataFrame) -> pd.DataFrame:
    """Normalise an input frame to the spec's columns (same index): numbers as floats (missing -> NaN),
    categories as strings ("unknown" when missing; working_ion defaults to Na), structure_type from the
    formula's polymorph prefix when not given. Pure; does not validate (see ``row_errors``)."""
    return pd.DataFrame(input_columns(target, df), index=df.index, copy=False)


def input_columns(target: TargetName | str, df: pd.DataFrame) -> dict[str, np.ndarray]:
    """``prepare_inputs``'s columns before they become a frame (name -> 1-D array, the spec's order): the
    serving path (``models.fast_transform``) hands them to the feature transformers without building the
    frame (~0.3 ms of a one-row prediction)."""
    spec = input_spec(target)
    if "formula" not in df.columns:
        raise ValueError(f"input has no 'formula' column (columns: {', '.join(map(str, df.columns))})")
    # columns collected as arrays (put in one frame by prepare_inputs): inserting them one by one into a
    # frame cost ~0.1 ms each, on the one-row serving path
    n = len(df)
    formulas = df["formula"].to_numpy(dtype=object)
    columns: dict[str, np.ndarray] = {"formula": formulas}
    for col in spec.numeric:
        columns[col] = _numeric(df[col]).to_numpy() if col in df.columns else np.full(n, np.nan)
    for col in spec.categorical:
        given = df[col].tolist() if col in df.columns else [None] * n
        values = [None if _missing(v) else str(v).strip() for v in given]
        if col == "structure_type":
            values = [v if v else _prefix(f) for v, f in zip(values, formulas, strict=True)]
        elif col == PHASE_COLUMN:  # spelling variants -> one of models.phase.PHASES (bad text: unknown)
            values = [normalize_phase(v)[0] for v in values]
        default = DEFAULT_WORKING_ION if col == "working_ion" else UNKNOWN
        # (an empty frame's column is float64, as pandas gave it when the columns were assigned one by one)
        columns[col] = np.array([v if v else default for v in values], dtype=object if n else float)
    return columns


def _missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _prefix(formula: object) -> str | None:
    try:
        return parse_formula(formula).structure_type
    except CompositionError:
        return None


def row_errors(
    target: TargetName | str, df: pd.DataFrame, comps: Sequence[Composition | CompositionError]
) -> list[str]:
    """Per row: "" when the row can be predicted, else why not (bad formula, missing/negative cycles,
    unknown working ion, non-numeric condition). ``comps`` are the parsed formulas of ``df``."""
    spec = input_spec(target)
    # column-wise Python values (df.iloc[i] per row cost ~0.3 ms: half of a screening chunk's time)
    n = len(df)
    numeric = {col: df[col].tolist() if col in df.columns else [None] * n for col in spec.numeric}
    ions = df["working_ion"].tolist() if "working_ion" in df.columns else [None] * n
    phases = (
        df[PHASE_COLUMN].tolist() if PHASE_COLUMN in spec.categorical and PHASE_COLUMN in df.columns else []
    )
    errors: list[str] = []
    for i, comp in enumerate(comps):
        problems: list[str] = []
        if isinstance(comp, CompositionError):
            problems.append(str(comp))
        for col in spec.numeric:
            raw = numeric[col][i]
            if raw is None or _missing(raw):
                if col in spec.required_numeric:
                    problems.append(f"{col} is required")
                continue
            try:
                value = parse_number(raw)
            except ValueError:
                problems.append(f"{col}={raw!r} is not a number")
                continue
            if not np.isfinite(value):
                problems.append(f"{col}={raw!r} is not finite")
            elif value < 0:
                problems.append(f"{col}={raw!r} is negative")
        if "working_ion" in spec.categorical and "working_ion" in df.columns:
            ion = ions[i]
            if not _missing(ion) and str(ion).strip() not in WORKING_IONS:
                problems.append(f"working_ion={ion!r} is not one of {', '.join(WORKING_IONS)}")
        if phases:
            phase_error = normalize_phase(phases[i])[1]
            if phase_error:
                problems.append(phase_error)
        if (
            "working_ion" in spec.categorical
            and not isinstance(comp, CompositionError)
            and not problems
            and comp.element_fraction(_ion(ions[i])) <= 0
        ):
            problems.append(
                f'"{comp.formula}" contains no {_ion(ions[i])}: give the discharged (ion-rich) formula'
            )
        errors.append("; ".join(problems))
    return errors


def _ion(ion: object) -> str:
    return DEFAULT_WORKING_ION if _missing(ion) else str(ion).strip()


class TargetInputs(TransformerMixin, BaseEstimator):
    """First pipeline step: ``prepare_inputs`` for a target (stateless; records the input columns)."""

    def __init__(self, target: str = TargetName.IONIC_CONDUCTIVITY.value) -> None:
        self.target = target

    def fit(self, X: pd.DataFrame, y: Any = None) -> TargetInputs:
        self.columns_ = list(input_spec(self.target).columns)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "columns_")
        return prepare_inputs(self.target, X)

    def transform_columns(self, X: pd.DataFrame) -> dict[str, np.ndarray]:
        """``transform(X)``'s columns without the frame (``input_columns``; ``models.fast_transform``)."""
        check_fitted(self, "columns_")
        return input_columns(self.target, X)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "columns_")
        return np.asarray(self.columns_, dtype=object)


class IonFractions(TransformerMixin, BaseEstimator):
    """Atomic fractions of given elements (e.g. the mobile ions Na and Li) from a formula column."""

    def __init__(self, elements: tuple[str, ...] = ("Na", "Li")) -> None:
        self.elements = elements

    def fit(self, X: Any, y: Any = None) -> IonFractions:
        self.feature_names_out_ = np.asarray([f"fraction {el}" for el in self.elements], dtype=object)
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "feature_names_out_")
        formulas = X.iloc[:, 0] if isinstance(X, pd.DataFrame) else np.asarray(X, dtype=object).reshape(-1)
        return self.transform_values(formulas)

    def transform_values(self, formulas: Sequence[object] | pd.Series | np.ndarray) -> np.ndarray:
        """``transform`` of the formula column's values (``models.fast_transform``: no frame needed)."""
        check_fitted(self, "feature_names_out_")
        out = np.full((len(formulas), len(self.elements)), np.nan)
        for i, formula in enumerate(formulas):
            try:
                comp = parse_formula(formula)
            except CompositionError:
                continue  # the composition featurizer reports the bad row
            out[i] = [comp.element_fraction(el) for el in self.elements]
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "feature_names_out_")
        return np.asarray(self.feature_names_out_, dtype=object)


def build_pipeline(
    target: TargetName | str,
    feature_set: str,
    regressor: Any,
    *,
    clip_z: float | None = None,
    extra_blocks: Sequence[tuple[str, Any, list[str]]] = (),
) -> Pipeline:
    """The whole model: inputs -> features -> imputation/scaling [-> clip] -> ``regressor``.

    ``clip_z`` clips the standardised features to [-clip_z, clip_z]: smooth models (the MLP ensemble)
    otherwise extrapolate wildly on a row with a feature many standard deviations out (measured on the
    voltage set: a 4000 V prediction without clipping, max error 3.8 V with clip_z=5).
    ``extra_blocks``: more (name, transformer, columns) feature blocks (e.g. ``models.transfer``)."""
    spec = input_spec(target)
    blocks: list[tuple[str, Any, list[str]]] = [
        ("composition", CompositionFeaturizer(feature_set=feature_set, formula_column="formula"), ["formula"])
    ]
    if spec.ion_fractions:
        blocks.append(("ions", IonFractions(spec.ion_fractions), ["formula"]))
    blocks.extend(extra_blocks)
    if spec.log_columns:
        blocks.append(
            (
                "log_conditions",
                Pipeline(
                    [
                        ("log", FunctionTransformer(np.log1p, feature_names_out="one-to-one")),
                        ("impute", SimpleImputer(strategy="median", add_indicator=True)),
                    ]
                ),
                list(spec.log_columns),
            )
        )
    linear = [c for c in spec.numeric if c not in spec.log_columns]
    if linear:
        blocks.append(("conditions", SimpleImputer(strategy="median", add_indicator=True), linear))
    if spec.categorical:
        blocks.append(
            (
                "categories",
                OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=5, sparse_output=False),
                list(spec.categorical),
            )
        )
    steps: list[tuple[str, Any]] = [
        ("inputs", TargetInputs(TargetName(target).value)),
        ("features", ColumnTransformer(blocks, remainder="drop", verbose_feature_names_out=True)),
        ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
        ("scale", StandardScaler()),
    ]
    if clip_z is not None:
        bounds = {"a_min": -float(clip_z), "a_max": float(clip_z)}
        steps.append(("clip", FunctionTransformer(np.clip, kw_args=bounds, feature_names_out="one-to-one")))
    steps.append(("regressor", regressor))
    return Pipeline(steps)


def pipeline_feature_set(pipeline: Pipeline) -> str:
    """The exact feature set name a (fitted or unfitted) pipeline computes."""
    featurizer = pipeline.named_steps["features"].transformers[0][1]
    name = getattr(featurizer, "feature_set_name_", None) or featurizer.feature_set
    return str(name)
