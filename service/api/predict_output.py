"""The ``PredictResponse`` JSON of ``POST /v1/predict`` written column by column.

The answers arrive as columns (``models.predictor.predict_columns``: NumPy arrays and lists, one value per
item). Building a dict per item and target and handing the tree to orjson cost ~2 ms for 1,000 items; here
each column is turned into its JSON texts at once (numbers: one ``orjson.dumps`` of the array, cut at the
commas; strings: each distinct text escaped once) and the texts of all columns are interleaved with the
constant parts (the keys, the unit) by list slice assignment, then joined once.

The JSON is the one the per-item dicts gave, byte for byte (orjson writes a NumPy float64 as it writes the
same Python float; key order as ``TargetPrediction`` declares its fields): a non-finite number is null,
an item with an error has null numbers, a null ``in_domain`` and an empty ``domain_reason``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import orjson

from models.targets import TARGETS, TargetName

#: A row's JSON text per part: a constant (the same for every row) or one text per row
Part = bytes | list[bytes]

_NULL = b"null"
_BOOL = {True: b"true", False: b"false"}
_NUMBERS = ("prediction", "std", "lower_90", "upper_90")


def json_texts(values: Sequence[str | None]) -> list[bytes]:
    """Each value's JSON text (strings and None): every distinct value serialised once."""
    texts = {value: orjson.dumps(value) for value in dict.fromkeys(values)}
    return list(map(texts.__getitem__, values))


def _constant_or_texts(values: Sequence[str | None]) -> Part:
    """``json_texts(values)``, or the one text when every value is the same (a constant part)."""
    if values and values.count(values[0]) == len(values):
        return orjson.dumps(values[0])
    return json_texts(values)


def number_texts(column: Any, blank: np.ndarray | None = None) -> list[bytes]:
    """The JSON numbers of a numeric column (null where not finite, and where ``blank``)."""
    values = np.array(column, dtype=float)
    if blank is not None:
        values[blank] = np.nan
    return array_texts(values)


def array_texts(values: np.ndarray) -> list[bytes]:
    """The JSON text of each element of a 1-d NumPy array (orjson's, NaN and inf as null)."""
    if not len(values):
        return []
    return orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].split(b",")


def _values(column: Any) -> list[Any]:
    """A column (Series, NumPy array or list) as a list of Python values."""
    return column if isinstance(column, list) else list(column.tolist())


def _strings(values: list[Any]) -> list[str]:
    """``str(v or "")`` of each value (a list of str is that already)."""
    if set(map(type, values)) <= {str}:
        return values
    return [str(v or "") for v in values]


def _flags(column: Any) -> list[bytes]:
    """``true``/``false`` per value (``bool(v)``)."""
    if isinstance(column, np.ndarray) and column.dtype == bool:
        return array_texts(column)
    return [_BOOL[bool(v)] for v in _values(column)]


def answer_parts(
    target: TargetName, out: Mapping[str, Any] | Any, relative: list[bytes] | None = None
) -> list[Part]:
    """The parts of each row's ``TargetPrediction`` for ``target`` from the predictor's columns ``out``
    (``predict_columns`` or its frame); ``relative``: each row's ``RelativePrediction`` JSON (else null)."""
    errors = _values(out["error"])
    failed = [] if errors.count("") == len(errors) else [isinstance(e, str) and bool(e) for e in errors]
    blank = np.array(failed, dtype=bool) if any(failed) else None
    in_domain = _flags(out["in_domain"])
    reasons = _strings(_values(out["domain_reason"]))
    versions = _values(out["model_version"])
    error: Part = _NULL
    if blank is None:
        versions = [str(v) for v in versions] if set(map(type, versions)) - {str} else versions
    else:
        reasons = list(reasons)
        versions = [str(v or "") if bad else str(v) for v, bad in zip(versions, failed, strict=True)]
        error = [orjson.dumps(e) if bad else _NULL for e, bad in zip(errors, failed, strict=True)]
        for i in np.flatnonzero(blank).tolist():
            in_domain[i], reasons[i] = _NULL, ""
    unit = orjson.dumps(TARGETS[target].unit)
    value, std, lower, upper = (number_texts(out[c], blank) for c in _NUMBERS)
    return [
        b'{"value":', value, b',"std":', std, b',"lower_90":', lower, b',"upper_90":', upper,
        b',"unit":' + unit + b',"in_domain":', in_domain,
        b',"domain_reason":', _constant_or_texts(reasons),
        b',"model_version":', _constant_or_texts(versions),
        b',"error":', error,
        b',"relative":', _NULL if relative is None else relative, b"}",
    ]  # fmt: skip


def predictions_parts(answers: Mapping[TargetName, list[Part]]) -> list[Part]:
    """The parts of each row's ``predictions`` object: target -> its answer (``answer_parts``)."""
    parts: list[Part] = [b"{"]
    for k, (target, answer) in enumerate(answers.items()):
        parts += [(b"," if k else b"") + orjson.dumps(target.value) + b":", *answer]
    return [*parts, b"}"]


def results_parts(ids: Sequence[str | None], formulas: Sequence[str], predictions: list[Part]) -> list[Part]:
    """The parts of each ``ItemResult`` (index, the client's id, the formula as sent, the predictions)."""
    index = array_texts(np.arange(len(ids)))
    return [
        b'{"index":', index, b',"id":', _constant_or_texts(ids), b',"formula":', json_texts(formulas),
        b',"predictions":', *predictions, b"}",
    ]  # fmt: skip


def joined_rows(n: int, parts: list[Part], separator: bytes = b",") -> bytes:
    """The ``n`` rows' texts, each the concatenation of ``parts``, joined by ``separator``."""
    if n == 0:
        return b""
    merged = _merged([*parts, separator])
    k = len(merged)
    pieces: list[bytes] = [b""] * (n * k)
    for j, part in enumerate(merged):
        pieces[j::k] = [part] * n if isinstance(part, bytes) else part
    pieces[-1] = pieces[-1][: len(pieces[-1]) - len(separator)]  # no separator after the last row
    return b"".join(pieces)


def row_texts(n: int, parts: list[Part]) -> list[bytes]:
    """Each of the ``n`` rows' texts on its own (a few rows: the host rows of a relative request)."""
    return [joined_rows(1, [p if isinstance(p, bytes) else [p[i]] for p in parts]) for i in range(n)]


def _merged(parts: list[Part]) -> list[Part]:
    """``parts`` with runs of constants joined (fewer slices to fill)."""
    out: list[Part] = []
    for part in parts:
        if isinstance(part, bytes) and out and isinstance(out[-1], bytes):
            out[-1] = out[-1] + part
        else:
            out.append(part)
    return out


def predict_response(
    results: bytes, reference: list[dict[str, Any]] | None, anchors: list[dict[str, Any]] | None
) -> bytes:
    """The ``PredictResponse`` JSON: ``results`` (the items' rows, ``joined_rows``), the host rows and the
    anchors report (their ``predictions`` as ``orjson.Fragment``)."""
    return b"".join(
        (
            b'{"results":[', results,
            b'],"reference":', orjson.dumps(reference),
            b',"anchors":', orjson.dumps(anchors), b"}",
        )
    )  # fmt: skip
