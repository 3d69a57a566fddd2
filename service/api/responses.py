"""JSON that always renders: the app's default response class and the helper the error handlers use.

Starlette renders JSON with ``allow_nan=False`` and UTF-8, so a non-finite float (NaN, Infinity, 1e999 read
as inf) or a lone surrogate anywhere in a response used to turn the answer into a 500. Here the fast path
is unchanged; only a body that fails to render is made safe (non-finite floats become null, unencodable
characters become ``\\uXXXX`` escapes) and rendered again.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from fastapi.responses import JSONResponse


def safe_text(text: str) -> str:
    """``text`` if it encodes as UTF-8, else with each unencodable character (a lone surrogate) escaped."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def json_safe(value: Any) -> Any:
    """A copy of ``value`` that ``json.dumps(..., allow_nan=False)`` and UTF-8 encoding both accept."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, Mapping):
        return {safe_text(str(k)): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def is_json_safe(value: Any) -> bool:
    """True when ``value`` renders unchanged (used to decide whether an input may be echoed back)."""
    try:
        json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (ValueError, TypeError, UnicodeEncodeError):
        return False
    return True


class SafeJSONResponse(JSONResponse):
    """`JSONResponse` that never fails to render: see the module docstring."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except (ValueError, UnicodeEncodeError):
            return super().render(json_safe(content))
