"""The typed shape of a screening spec: one small pydantic model per part of the spec (grid, conditions,
compensation, co-doping, template, the whole spec), validated before any chemistry is looked at.

``SpecForm.from_mapping(mapping)`` checks types and sizes at the boundary (a YAML/TOML file, CLI flags or
a JSON request body) and raises :class:`SpecError` with one line naming the field (``exclude: needs
element symbols, got 5``), never a traceback: a wrong-typed field, an absurd grid (``stop: 1e308,
step: 1e-300``), a string that is not text (a lone surrogate) or an oversized list is refused here.
``screening.spec.parse_spec`` then does the chemistry (host charges, dopant groups, compensation) on the
typed form. The accepted shorthands of the file grammar (``dopants: "Ru, Ir"``, ``fractions:
"0.05:0.2:0.05"``, ``compensation: vacancy``) are normalised here too, so the parser sees one shape.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from models.conditions import (
    CONDITION_COLUMNS,
    DEFAULT_WORKING_ION,
    NUMERIC_CONDITIONS,
    check_condition,
    check_window,
)
from models.phase import DEFAULT_PHASE, PHASES, normalize_phase
from models.targets import TargetName
from screening.families import FAMILIES

__all__ = [
    "MAX_ANCHORS",
    "MAX_GRID_POINTS",
    "MAX_LIST_ITEMS",
    "AnchorForm",
    "CodopingForm",
    "CompensationForm",
    "CompensationMode",
    "ConditionsForm",
    "GridForm",
    "SpecError",
    "SpecForm",
    "TemplateForm",
    "describe_error",
    "field_message",
    "finite_number",
    "grid_values",
    "symbol_list",
]

#: A grid longer than this is refused before its values are built (the candidate cap comes later).
MAX_GRID_POINTS = 10_000_000
#: Lists in a spec (dopants, exclude, targets, templates, valences) are short; more items is not a spec.
MAX_LIST_ITEMS = 500
#: Anchors are the user's own few measured rows, not a dataset.
MAX_ANCHORS = 100
#: Free text (a description, a formula) longer than this is not a spec field.
MAX_TEXT_CHARS = 10_000
#: Stands for "this field" in a validator's message; ``describe_error`` replaces it with the field's path.
_HERE = "\x00here"


class SpecError(ValueError):
    """An invalid screening spec; the message starts with the field (``dopants: unknown element 'Xx'``)."""


class CompensationMode(StrEnum):
    """What adjusts to keep a doped formula neutral (see screening.spec)."""

    NA_CONTENT = "na_content"
    VARIABLE_VALENCE = "variable_valence"
    VACANCY = "vacancy"
    NONE = "none"


# ------------------------------------------------------------------------------------------ scalar checks
def finite_number(value: object, where: str) -> float:
    """The project's one spec-number rule: an int, float or numeric string (not a bool), finite."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise SpecError(f"{where}: {value!r} is not a number")
    try:
        out = float(value)
    except (ValueError, OverflowError):
        raise SpecError(f"{where}: {value!r} is not a number") from None
    if not math.isfinite(out):
        raise SpecError(f"{where}: {value!r} is not a finite number")
    return out


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"needs {what}, got {value!r}")
    if len(value) > MAX_TEXT_CHARS:
        raise ValueError(f"longer than {MAX_TEXT_CHARS} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} must be valid text (got an unpaired surrogate)") from None
    return value


def _symbol(value: object) -> str:
    return _text(value, "an element symbol")


def symbol_list(value: object) -> tuple[str, ...]:
    """A symbol/group name, a comma-separated string ("Ru, Ir", from a CLI flag) or a list of them."""
    if isinstance(value, str):
        _text(value, "element symbols or group names")
        return tuple(v.strip() for v in value.split(",") if v.strip()) if "," in value else (value,)
    if not isinstance(value, list | tuple):
        raise ValueError(f"needs element symbols or group names, got {value!r}")
    if len(value) > MAX_LIST_ITEMS:
        raise ValueError(f"more than {MAX_LIST_ITEMS} entries")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise ValueError(f"{_HERE}[{i}]: {item!r} is not an element symbol or group name")
        _text(item, "an element symbol or group name")
    return tuple(value)


def _strict_int(lo: int, hi: int) -> Any:
    def check(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ValueError(f"needs an integer in {lo}..{hi:,}, got {value!r}")
        return value

    return BeforeValidator(check)


def _strict_bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"needs true/false, got {value!r}")
    return value


Symbol = Annotated[str, BeforeValidator(_symbol)]
Symbols = Annotated[tuple[str, ...], BeforeValidator(symbol_list)]
Text = Annotated[str, BeforeValidator(lambda v: _text(v, "text"))]
StrictBool = Annotated[bool, BeforeValidator(_strict_bool)]


# --------------------------------------------------------------------------------------------- the forms
class _Form(BaseModel):
    """Frozen, no unknown keys (listed with the known ones), no silent coercion of shapes."""

    model_config = ConfigDict(frozen=True)
    what: ClassVar[str] = "a mapping"

    @classmethod
    def _normalise(cls, data: object) -> object:
        """Shorthands of the file grammar -> the mapping form (subclasses override)."""
        return data

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: object) -> object:
        data = cls._normalise(data)
        if not isinstance(data, Mapping):
            raise ValueError(f"needs {cls.what}, got {data!r}")
        extra = [k for k in data if k not in cls.model_fields]
        if extra:
            raise ValueError(f"unknown field(s) {extra} (known: {', '.join(cls.model_fields)})")
        return data


class GridForm(BaseModel):
    """A grid of values: a list, one number, ``{start, stop, step}`` (stop included), ``{values: [...]}``,
    or the CLI strings ``"0.05:0.2:0.05"`` and ``"0.05,0.1"``. ``values`` are built and checked here."""

    model_config = ConfigDict(frozen=True)
    values: tuple[float, ...]

    @model_validator(mode="before")
    @classmethod
    def _values(cls, data: object) -> object:
        return {"values": grid_values(data, _HERE)}  # its SpecError (a ValueError) names the part


def _range_values(value: Mapping[str, object], where: str) -> tuple[float, ...]:
    missing = [k for k in ("start", "stop", "step") if k not in value]
    if missing:
        raise SpecError(f"{where}: needs a list or start/stop/step (missing {', '.join(missing)})")
    extra = set(value) - {"start", "stop", "step"}
    if extra:
        raise SpecError(f"{where}: unknown key(s) {sorted(extra)} (use start, stop, step)")
    start = finite_number(value["start"], f"{where}.start")
    stop = finite_number(value["stop"], f"{where}.stop")
    step = finite_number(value["step"], f"{where}.step")
    if step <= 0:
        raise SpecError(f"{where}.step: must be > 0, got {step}")
    if stop < start:
        raise SpecError(f"{where}: empty grid (stop {stop} < start {start})")
    span = (stop - start) / step
    if not math.isfinite(span) or span + 1 > MAX_GRID_POINTS:
        raise SpecError(
            f"{where}: more than {MAX_GRID_POINTS:,} grid points (step {step:g} over {stop - start:g})"
        )
    n = math.floor(span + 1e-9) + 1
    return tuple(round(start + i * step, 10) for i in range(n))


def grid_values(value: object, where: str) -> tuple[float, ...]:
    """The values of a grid in any accepted form; SpecError naming ``where`` otherwise."""
    if isinstance(value, str) and ":" in value:
        parts = value.split(":")
        if len(parts) != 3:
            raise SpecError(f"{where}: {value!r} is not start:stop:step")
        value = dict(zip(("start", "stop", "step"), (p.strip() for p in parts), strict=True))
    elif isinstance(value, str) and "," in value:
        value = [p.strip() for p in value.split(",") if p.strip()]
    if isinstance(value, Mapping):
        if "values" in value:
            if len(value) > 1:
                raise SpecError(f"{where}: give either values or start/stop/step")
            return grid_values(value["values"], where)
        values = _range_values(value, where)
    elif isinstance(value, int | float | str) and not isinstance(value, bool):
        values = (finite_number(value, where),)
    elif isinstance(value, list | tuple):
        if len(value) > MAX_GRID_POINTS:
            raise SpecError(f"{where}: more than {MAX_GRID_POINTS:,} grid points")
        values = tuple(finite_number(v, f"{where}[{i}]") for i, v in enumerate(value))
    else:
        raise SpecError(f"{where}: needs a list of numbers or start/stop/step, got {value!r}")
    if not values:
        raise SpecError(f"{where}: empty grid")
    if len(set(values)) != len(values):
        raise SpecError(f"{where}: duplicate values in {list(values)}")
    return values


class ConditionsForm(_Form):
    """Battery test conditions the cathode targets are predicted under: the fields of
    ``models.conditions.CONDITION_FIELDS`` (every number > 0 and at most the field's maximum)."""

    what: ClassVar[str] = f"a mapping {{{', '.join(CONDITION_COLUMNS)}}}"
    cycles: float | None = None
    current_mA_g: float | None = None
    voltage_low_V: float | None = None
    voltage_high_V: float | None = None
    working_ion: Symbol = DEFAULT_WORKING_ION

    @field_validator(*NUMERIC_CONDITIONS, mode="before")
    @classmethod
    def _number(cls, value: object, info: ValidationInfo) -> float | None:
        if value is None:
            return None
        return check_condition(str(info.field_name), finite_number(value, _HERE))

    @model_validator(mode="after")
    def _window(self) -> ConditionsForm:
        check_window(self.voltage_low_V, self.voltage_high_V)
        return self

    def numbers(self) -> dict[str, float]:
        """The numeric conditions given (None left out), by name."""
        return {k: v for k in NUMERIC_CONDITIONS if (v := getattr(self, k)) is not None}


def _mode(value: object) -> CompensationMode:
    known = ", ".join(m.value for m in CompensationMode)
    if not isinstance(value, str) or value not in {m.value for m in CompensationMode}:
        raise ValueError(f"unknown mode {value!r} (known: {known})")
    return CompensationMode(value)


def _valence_range(value: object) -> tuple[float, float]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError(f"needs [low, high], got {value!r}")
    lo, hi = (finite_number(v, f"{_HERE}[{i}]") for i, v in enumerate(value))
    if lo > hi:
        raise ValueError(f"low {lo} above high {hi}")
    return (lo, hi)


class CompensationForm(_Form):
    """How the charge of an aliovalent dopant is compensated (``compensation: vacancy`` is ``{mode}``)."""

    what: ClassVar[str] = "a mode or a mapping {mode, element/site, range}"
    mode: Annotated[CompensationMode, BeforeValidator(_mode)]
    element: Symbol | None = None
    site: Symbol | None = None
    range: Annotated[tuple[float, float], BeforeValidator(_valence_range)] | None = None

    @classmethod
    def _normalise(cls, data: object) -> object:
        data = {"mode": data} if isinstance(data, str) else data
        if isinstance(data, Mapping):
            _mode(data.get("mode"))  # "compensation: unknown mode 'magic'" (at this level, not .mode)
        return data


class CodopingForm(_Form):
    """A second dopant: its elements, its grid (substitution) and the site it replaces (default: site)."""

    what: ClassVar[str] = "a mapping {dopants, fractions, site}"
    dopants: Symbols | None = None
    fractions: GridForm | None = None
    site: Symbol | None = None


def _formulas(value: object) -> str | tuple[str, ...]:
    if isinstance(value, str):
        return _text(value, "a template string")
    items = value
    if not isinstance(items, list | tuple) or not items:
        raise ValueError(f"needs a template string or a list of them, got {value!r}")
    if len(items) > MAX_LIST_ITEMS:
        raise ValueError(f"more than {MAX_LIST_ITEMS} templates")
    return tuple(_text(t, "a template string") for t in items)


def _variables(value: object) -> dict[str, GridForm]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"needs {{name: grid}}, got {value!r}")
    if len(value) > 20:
        raise ValueError("more than 20 variables")
    return {_text(k, "a variable name"): v for k, v in value.items()}


class TemplateForm(_Form):
    """A formula template (or several) and the grid of each variable, in declared order."""

    what: ClassVar[str] = "a mapping {formula, variables}"
    formula: Annotated[str | tuple[str, ...], BeforeValidator(_formulas)]  # one string, or a list
    variables: Annotated[dict[str, GridForm], BeforeValidator(_variables)] = {}

    @property
    def formulas(self) -> tuple[str, ...]:
        return (self.formula,) if isinstance(self.formula, str) else self.formula


def _name(value: object) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}", value):
        raise ValueError(f"needs letters, digits, '_', '.', '-' (max 100), got {value!r}")
    return value


def _targets(value: object) -> tuple[TargetName, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items:
        raise ValueError(f"needs a list of target names, got {value!r}")
    known = {t.value for t in TargetName}
    for t in items:
        if not isinstance(t, str) or t not in known:
            raise ValueError(f"{t!r} is not a target ({', '.join(sorted(known))})")
    return tuple(TargetName(t) for t in items)


def _valences(value: object) -> dict[str, tuple[float, ...]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or len(value) > MAX_LIST_ITEMS:
        raise ValueError(f"needs {{element: valence}}, got {value!r}")
    out: dict[str, tuple[float, ...]] = {}
    for k, v in value.items():
        if not isinstance(k, str):
            raise ValueError(f"needs {{element: valence}}, got key {k!r}")
        many = isinstance(v, list | tuple)
        items = v if many else [v]
        if many and not 1 <= len(items) <= 8:
            raise ValueError(f"{_HERE}.{k}: needs 1 to 8 valences, got {v!r}")
        vals = tuple(finite_number(x, f"{_HERE}.{k}") for x in items)
        for x in vals:
            if not 0 < x <= 8:
                raise ValueError(f"{_HERE}.{k}: {x} is not a cation valence in (0, 8]")
        out[k] = vals
    return out


def _family(value: object) -> str:
    if not isinstance(value, str) or value not in FAMILIES:
        raise ValueError(f"unknown family {value!r} (known: {', '.join(FAMILIES)})")
    return value


def _phase(value: object) -> str:
    """The processing state every candidate is predicted in (models.phase: spelling variants normalised)."""
    if not isinstance(value, str):
        raise ValueError(f"needs a phase name, got {value!r}")
    phase, error = normalize_phase(_text(value, "a phase name"))
    if error:
        raise ValueError(f"unknown phase {value!r} (known: {', '.join(PHASES)})")
    return phase


def _ranking(value: object) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"needs a mapping {{mode, objectives, ...}}, got {value!r}")
    return dict(value)


def _target(value: object) -> TargetName:
    known = {t.value for t in TargetName}
    if not isinstance(value, str) or value not in known:
        raise ValueError(f"{value!r} is not a target ({', '.join(sorted(known))})")
    return TargetName(value)


class AnchorForm(_Form):
    """One of the user's own measured rows: the formula, the value measured, the conditions it was measured
    under (left out: the spec's conditions) and, when the spec screens several targets, which one."""

    what: ClassVar[str] = "a mapping {formula, measured, target, cycles, current_mA_g, voltage_low_V, ...}"
    formula: Annotated[str, BeforeValidator(lambda v: _text(v, "a formula"))]
    measured: Annotated[float, BeforeValidator(lambda v: finite_number(v, _HERE))]
    target: Annotated[TargetName, BeforeValidator(_target)] | None = None
    cycles: float | None = None
    current_mA_g: float | None = None
    voltage_low_V: float | None = None
    voltage_high_V: float | None = None
    working_ion: Symbol | None = None

    @field_validator(*NUMERIC_CONDITIONS, mode="before")
    @classmethod
    def _number(cls, value: object, info: ValidationInfo) -> float | None:
        if value is None:
            return None
        return check_condition(str(info.field_name), finite_number(value, _HERE))


def _anchor_rows(value: object) -> tuple[object, ...]:
    """A list of rows, or ``{target: [rows]}`` (each row gets that target). A file path is read by
    ``screening.spec_io`` next to the spec file; here (a request body) only inline rows are accepted."""
    if isinstance(value, str):
        raise ValueError(
            f"{value!r}: a file of anchors is read next to a spec file; give the rows inline "
            "({formula, measured, ...}) here"
        )
    rows: list[object] = []
    if isinstance(value, Mapping):
        for target, items in value.items():
            _target(target)
            if not isinstance(items, list | tuple):
                raise ValueError(f"{_HERE}.{target}: needs a list of rows, got {items!r}")
            rows += [{**r, "target": target} if isinstance(r, Mapping) else r for r in items]
    elif isinstance(value, list | tuple):
        rows = list(value)
    else:
        raise ValueError(f"needs a list of measured rows or {{target: rows}}, got {value!r}")
    if not rows:
        raise ValueError("empty: give at least one measured row, or no anchors")
    if len(rows) > MAX_ANCHORS:
        raise ValueError(f"more than {MAX_ANCHORS} rows (anchors are your few measured rows)")
    return tuple(rows)


class SpecForm(_Form):
    """A whole spec, typed. Chemistry (is the site in the host, is it charge balanced) is checked later."""

    what: ClassVar[str] = "a mapping (name, family, host, ...)"
    name: Annotated[str, BeforeValidator(_name)]
    description: Text = ""
    family: Annotated[str, BeforeValidator(_family)]
    targets: Annotated[tuple[TargetName, ...], BeforeValidator(_targets)] | None = None
    host: Annotated[str, BeforeValidator(lambda v: _text(v, "a formula"))]
    site: Symbol | None = None
    dopants: Symbols | None = None
    exclude: Symbols = ()
    fractions: GridForm | None = None
    codoping: CodopingForm | None = None
    compensation: CompensationForm | None = None
    valences: Annotated[dict[str, tuple[float, ...]], BeforeValidator(_valences)] = {}
    valence_policy: Literal["preferred", "all"] = "preferred"
    template: TemplateForm | None = None
    conditions: ConditionsForm = ConditionsForm()
    ranking: Annotated[dict[str, Any], BeforeValidator(_ranking)] = {}
    reference: Annotated[str, BeforeValidator(lambda v: _text(v, "a formula"))] | None = None
    anchors: Annotated[tuple[AnchorForm, ...], BeforeValidator(_anchor_rows)] = ()
    decimals: Annotated[int, _strict_int(2, 8)] = 4
    max_candidates: Annotated[int, _strict_int(1, 10**12)] | None = None
    allow_peroxide: StrictBool | None = None
    #: crystalline / amorphous / glass / glass-ceramic / unknown: the phase the conductivity model is asked
    #: about for every candidate (``unknown``: predicted like rows whose source stated none)
    phase: Annotated[str, BeforeValidator(_phase)] = DEFAULT_PHASE

    @classmethod
    def _normalise(cls, data: object) -> object:
        if isinstance(data, Mapping):  # an empty YAML section (``conditions:``) means the default
            none_ok = {"conditions", "ranking", "valences", "reference", "anchors"}
            return {k: v for k, v in data.items() if not (v is None and k in none_ok)}
        return data

    @property
    def form(self) -> Literal["substitution", "template"]:
        return "template" if self.template is not None else "substitution"

    @classmethod
    def from_mapping(cls, mapping: object) -> SpecForm:
        """Validate ``mapping``; SpecError naming the first bad field (one line) otherwise."""
        if not isinstance(mapping, Mapping):
            raise SpecError(f"spec: needs a mapping, got {type(mapping).__name__}")
        try:
            return cls.model_validate(dict(mapping))
        except ValidationError as exc:
            raise SpecError(describe_error(exc)) from None
        except RecursionError:
            raise SpecError("spec: nested too deeply") from None


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "spec"


def field_message(where: str, exc: Exception) -> str:
    """``where: message`` for a validator's error (``where[1]: ...`` when it names a part of the field)."""
    msg = str(exc)
    return f"{where}{msg.removeprefix(_HERE)}" if msg.startswith(_HERE) else f"{where}: {msg}"


def describe_error(exc: ValidationError) -> str:
    """One line for the first error of ``exc``: ``field.path: what is wrong``."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = _where(tuple(first["loc"]))
    msg = str(first["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if first["type"] == "missing":
        msg = "required"
    elif first["type"] == "literal_error":
        msg = f"{first.get('input')!r} ({msg.removeprefix('Input should be ')})"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    if msg.startswith(_HERE):  # a part of the field: "dopants[1]: ...", "fractions.step: ..."
        return f"{where}{msg.removeprefix(_HERE)}{more}"
    return f"{where}: {msg}{more}"
