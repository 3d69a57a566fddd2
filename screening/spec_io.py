"""Reading a screening spec file (YAML or TOML): the only file I/O of the screening core."""

from __future__ import annotations

import csv
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from screening.spec import ScreeningSpec, SpecError, parse_spec

__all__ = ["MAX_SPEC_BYTES", "load_spec", "read_anchor_file", "read_spec_mapping"]

#: A spec is a few kB; refuse anything absurd before parsing it.
MAX_SPEC_BYTES = 1_000_000


def read_spec_mapping(path: str | Path) -> dict[str, Any]:
    """The raw mapping of a ``.yaml``/``.yml``/``.toml`` spec file; SpecError naming the file otherwise."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".yaml", ".yml", ".toml"):
        raise SpecError(f"{p}: spec files are .yaml, .yml or .toml, got {suffix or 'no suffix'!r}")
    if not p.is_file():
        raise SpecError(f"{p}: no such spec file")
    if p.stat().st_size > MAX_SPEC_BYTES:
        raise SpecError(f"{p}: larger than {MAX_SPEC_BYTES} bytes; not a spec")
    text = p.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text) if suffix == ".toml" else yaml.safe_load(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        raise SpecError(f"{p}: not valid {suffix[1:].upper()}: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError(
            f"{p}: the file must hold a mapping (name, family, host, ...), got {type(data).__name__}"
        )
    return _with_anchor_files(data, p.parent)


def read_anchor_file(path: Path) -> list[dict[str, str]]:
    """The rows of an anchors CSV (formula, measured, conditions, optional target); empty cells left out
    (the spec's conditions apply). The typed checks are ``screening.spec_forms.AnchorForm``'s."""
    if path.suffix.lower() != ".csv":
        raise SpecError(f"anchors: {path}: anchor files are .csv")
    if not path.is_file():
        raise SpecError(f"anchors: {path}: no such file")
    if path.stat().st_size > MAX_SPEC_BYTES:
        raise SpecError(f"anchors: {path}: larger than {MAX_SPEC_BYTES} bytes; anchors are a few rows")
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            return [{k: v for k, v in row.items() if k and v not in (None, "")} for row in csv.DictReader(fh)]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise SpecError(f"anchors: {path}: not a readable CSV: {exc}") from None


def _with_anchor_files(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """``anchors: FILE.csv`` or ``anchors: {target: FILE.csv}``: the file's rows, the path read relative to
    the spec file."""
    anchors = data.get("anchors")
    if isinstance(anchors, str):
        return {**data, "anchors": read_anchor_file(base / anchors)}
    if isinstance(anchors, Mapping) and any(isinstance(v, str) for v in anchors.values()):
        resolved = {k: read_anchor_file(base / v) if isinstance(v, str) else v for k, v in anchors.items()}
        return {**data, "anchors": resolved}
    return data


def load_spec(
    path: str | Path,
    *,
    model_elements: frozenset[str] | None = None,
    max_candidates: int | None = None,
    overrides: dict[str, Any] | None = None,
) -> ScreeningSpec:
    """Read and validate a spec file. ``overrides`` (e.g. from CLI flags) replace top-level fields.
    Errors name the file and the field."""
    data = read_spec_mapping(path)
    if overrides:
        data = {**data, **overrides}
    try:
        return parse_spec(data, model_elements=model_elements, max_candidates=max_candidates)
    except SpecError as exc:
        raise SpecError(f"{Path(path)}: {exc}") from None
