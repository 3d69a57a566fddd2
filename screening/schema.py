"""The screen's result schema, declared once: which columns a candidate, a rejected candidate, a scored
candidate and a ranked candidate carry, how a per-target column is named, and the rejection reason codes.

Results stay columnar (one wide DataFrame / Parquet chunk per table: what makes a million rows fast); this
module only names the columns. Every producer and reader (candidate generation, scoring, the chunk store
reads, ranking, the report, the CLI and the API) builds its column names here, never by hand:

* ``column(target, Field.PREDICTION)`` -> ``"capacity_retention_prediction"``;
* ``CANDIDATE_COLUMNS`` (accepted candidates), ``REJECTED_COLUMNS`` (with ``reason_code`` + ``reason``);
* ``result_columns(targets)``: what the merged screen table reads back from the scored chunks;
* ``RejectCode``: a machine-readable code next to each human-readable reason, so counts never parse text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

import pandas as pd

from models import conditions
from models.predictor import OUTPUT_COLUMNS
from models.targets import TargetName

__all__ = [
    "CANDIDATE_COLUMNS",
    "CONDITION_COLUMNS",
    "NUMERIC_FIELDS",
    "RANK_COLUMNS",
    "REJECTED_COLUMNS",
    "REJECT_LABELS",
    "RELATIVE_FIELDS",
    "RESULT_COLUMNS",
    "SCHEMA_VERSION",
    "Field",
    "RejectCode",
    "column",
    "count_by_code",
    "relative_columns",
    "result_columns",
    "target_columns",
    "with_columns",
]

#: Bumped when the columns of a stored chunk change, so chunks written under another schema are not reused.
SCHEMA_VERSION = 4  # 3: the phase column; 4: the relative columns (delta, P(better), anchored values)


class Field(StrEnum):
    """What a predictor answers per target and row (``models.predictor.OUTPUT_COLUMNS``, in that order)."""

    PREDICTION = "prediction"
    STD = "std"
    LOWER_90 = "lower_90"
    UPPER_90 = "upper_90"
    IN_DOMAIN = "in_domain"
    DOMAIN_REASON = "domain_reason"
    MODEL_VERSION = "model_version"
    ERROR = "error"
    # relative to the spec's reference (the host by default): models.relative.RELATIVE_COLUMNS
    DELTA = "delta"
    DELTA_STD = "delta_std"
    DELTA_LOWER_90 = "delta_lower_90"
    DELTA_UPPER_90 = "delta_upper_90"
    P_BETTER = "p_better"
    ANCHORED_PREDICTION = "anchored_prediction"
    ANCHORED_LOWER_90 = "anchored_lower_90"
    ANCHORED_UPPER_90 = "anchored_upper_90"
    RELATIVE_ERROR = "relative_error"  # why a row has no relative numbers ('' when it has them)
    # written by the ranking, per objective
    SCORE = "score"


#: The predictor's fields, in the predictor's order (the ranking's ``score`` is not one of them).
PREDICTOR_FIELDS: tuple[Field, ...] = tuple(Field(c) for c in OUTPUT_COLUMNS)
NUMERIC_FIELDS: tuple[Field, ...] = (Field.PREDICTION, Field.STD, Field.LOWER_90, Field.UPPER_90)
assert tuple(f.value for f in PREDICTOR_FIELDS) == OUTPUT_COLUMNS
#: Per target, what scoring adds relative to the reference (numbers, then the reason when there are none);
#: the numbers are named as in ``models.relative.RELATIVE_COLUMNS`` (not imported: this module stays light).
RELATIVE_FIELDS: tuple[Field, ...] = (
    Field.DELTA,
    Field.DELTA_STD,
    Field.DELTA_LOWER_90,
    Field.DELTA_UPPER_90,
    Field.P_BETTER,
    Field.ANCHORED_PREDICTION,
    Field.ANCHORED_LOWER_90,
    Field.ANCHORED_UPPER_90,
    Field.RELATIVE_ERROR,
)


def column(target: TargetName | str, field: Field | str) -> str:
    """The column of ``field`` for ``target``: ``column("average_voltage", Field.STD)`` is
    ``"average_voltage_std"``."""
    name = target.value if isinstance(target, TargetName) else str(target)
    return f"{name}_{Field(field).value}"


def target_columns(target: TargetName | str) -> tuple[str, ...]:
    """Every predictor column of one target, in the predictor's order."""
    return tuple(column(target, f) for f in PREDICTOR_FIELDS)


def relative_columns(target: TargetName | str) -> tuple[str, ...]:
    """The relative columns of one target (``RELATIVE_FIELDS``)."""
    return tuple(column(target, f) for f in RELATIVE_FIELDS)


#: Battery-condition columns of a candidate (the predictor's inputs besides the formula): declared once in
#: ``models.conditions``.
CONDITION_COLUMNS = conditions.CONDITION_COLUMNS

#: An accepted (charge-neutral) candidate, as generated; ``var_<name>`` columns follow for templates.
CANDIDATE_COLUMNS = (
    "candidate_id",
    "formula",
    "is_host",
    "family",
    "structure_type",
    "host",
    "template",
    "site",
    "dopant",
    "dopant_valence",
    "fraction",
    "site2",
    "dopant2",
    "dopant2_valence",
    "fraction2",
    "compensation",
    "phase",  # the spec's phase (models.phase.PHASES): what the conductivity model is asked about
    *CONDITION_COLUMNS,
)

#: A rejected candidate: the code (``RejectCode``) and the sentence a researcher reads.
REJECTED_COLUMNS = (
    "candidate_id",
    "formula",
    "dopant",
    "fraction",
    "dopant2",
    "fraction2",
    "reason_code",
    "reason",
)

# The merged screen table keeps the candidate columns minus the template text and the per-spec constant
# conditions (cycles stays), plus every per-target column.
_DROPPED_FROM_RESULTS = frozenset(
    {"template", "current_mA_g", "voltage_low_V", "voltage_high_V", "working_ion"}
)
RESULT_COLUMNS = tuple(c for c in CANDIDATE_COLUMNS if c not in _DROPPED_FROM_RESULTS)

#: What ``screening.ranking.rank`` adds (besides ``column(objective, Field.SCORE)`` per objective).
RANK_COLUMNS = (
    "score",
    "eligible",
    "excluded_reason",
    "pareto_rank",
    "pareto_front",
    "pareto_possible",
    "rank",
    "ranked_by",
)


def result_columns(targets: Iterable[TargetName | str]) -> list[str]:
    """The columns of the merged screen table read back from the scored chunks."""
    targets = list(targets)
    return [
        *RESULT_COLUMNS,
        *(c for t in targets for c in target_columns(t)),
        *(c for t in targets for c in relative_columns(t)),
    ]


class RejectCode(StrEnum):
    """Why a generated candidate was rejected (``reason_code`` column); ``reason`` says it in words."""

    DUPLICATE = "duplicate"  # the same element twice on one site, or a swapped dopant pair
    NEGATIVE_AMOUNT = "negative_amount"  # an element's amount would drop below zero
    COMPENSATION_LIMIT = "compensation_limit"  # vacancies cannot add atoms
    NOT_CHARGE_BALANCED = "not_charge_balanced"  # no neutral assignment (incl. variable-valence range)


REJECT_LABELS: Mapping[RejectCode, str] = {
    RejectCode.DUPLICATE: "duplicate co-doping",
    RejectCode.NEGATIVE_AMOUNT: "negative amount",
    RejectCode.COMPENSATION_LIMIT: "compensation cannot balance",
    RejectCode.NOT_CHARGE_BALANCED: "not charge-neutral",
}


def count_by_code(codes: Mapping[str, int]) -> dict[RejectCode, int]:
    """Counts per known code (unknown codes raise: a chunk from another schema must not be counted)."""
    out = dict.fromkeys(RejectCode, 0)
    for code, n in codes.items():
        out[RejectCode(code)] += int(n)
    return out


def with_columns(frame: pd.DataFrame, new: Mapping[str, Any]) -> pd.DataFrame:
    """A copy of ``frame`` (0..n-1 index) with the ``new`` columns (name -> one value per row): columns it
    already has are replaced where they stand, the others are appended in ``new``'s order, all in one join
    (assigning columns one by one to a frame costs ~0.2-0.4 ms each)."""
    present = [c for c in new if c in frame.columns]
    out = frame.copy() if present else frame
    for c in present:
        out[c] = new[c]
    added = {c: v for c, v in new.items() if c not in frame.columns}
    if not added:
        return out.copy() if out is frame else out
    return pd.concat([out, pd.DataFrame(added, index=out.index)], axis=1)
