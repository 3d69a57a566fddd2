"""The screening spec: what to generate (host, site, dopants, fraction grid, compensation or a template),
under which conditions the targets are predicted, and how to rank. Validated once, here.

``parse_spec(mapping)`` takes the mapping a YAML/TOML file (``screening.spec_io.load_spec``) or CLI flags
produce and returns a frozen :class:`ScreeningSpec`, or raises :class:`SpecError` naming the field.

Grammar (YAML shown; TOML is the same mapping)::

    name: p2_na0.6li0.2mn0.8o2_dopants      # [A-Za-z0-9_.-], used for output names
    family: p2_layered_oxide                # FAMILIES: decides targets (cathode: average_voltage +
                                            # capacity_retention; electrolyte: ionic_conductivity)
    targets: [capacity_retention]           # optional subset of the family's targets
    host: Na0.6Li0.2Mn0.8O2                 # any formula parse_formula accepts (Na[Li1/3Ru2/3]O2,
                                            # Na2O2-HfCl4); must be charge balanced; candidate 0
    # --- substitution form ---
    site: Mn                                # host element replaced by the dopant
    dopants: [Ru, Ir, 4d_5d_tm]             # symbols and/or groups (DOPANT_GROUPS, aliases such as
                                            # "4d and 5d transition metals", or model_elements =
                                            # the set the caller passes); a CLI string "Ru, Ir" works
    exclude: [Tc]                           # optional
    fractions: {start: 0.05, stop: 0.2, step: 0.05}    # or [0.05, 0.1], "0.05:0.2:0.05", "0.05,0.1"
    codoping: {dopants: [Ti], fractions: [0.05], site: Li}   # optional second dopant (site default: site)
    compensation: variable_valence          # or {mode, element/site, range}:
        # na_content        Na (or element) adjusts by x*(v_site - v)/v_Na; "Na content would be negative"
        # variable_valence  element (default: site) must stay in range (default: featurize.oxidation's)
        # vacancy           vacancies on site (an element): only removes atoms of that site
        # none              nothing adjusts; only the neutrality check
    valences: {Mo: 6, Ru: [4, 5]}           # optional dopant valence overrides
    valence_policy: preferred               # or all (every integer state; only where the formula
                                            # depends on it: na_content, vacancy, templates using v)
    # --- template form (instead of site/fractions/compensation) ---
    template:
      formula: "{x}Na2O2-{M}Cl{v}"          # or a list of templates; grammar in screening.templates
      variables: {x: {start: 0.8, stop: 1.2, step: 0.1}}   # grids, declared order = id order
    # --- common ---
    conditions: {cycles: 100, current_mA_g: 170, voltage_low_V: 2.0, voltage_high_V: 4.5}
                                            # required for cathode families (retention needs them)
    ranking: {mode: pareto, objectives: {capacity_retention: {weight: 2, threshold: 70}}}
                                            # screening.ranking.parse_ranking
    decimals: 4                             # amounts in candidate formulas
    max_candidates: 10000000                # cap; larger grids are refused
    allow_peroxide: false                   # default true only for oxychlorides (Na2O2)

The substitution form is compiled into a template (``Na{0.6}Li{0.2}Mn{0.8 - x}{M}{x}O{2.0}``, with the
compensation written as an expression of the dopant valence ``v``), so candidate generation has one path.

Oxidation states come from ``featurize.oxidation`` (the project's one neutrality check and its cation
table): the host's states from ``assign_oxidation_states``; a dopant's valence is its preferred state
(``cation_states(el).preferred``) or every integer state in its range (``valence_policy: all``), unless
``valences`` says otherwise; a variable-valence metal's default range is its (lo, hi) there. Oxygen is
held at -2 (no peroxide / oxygen holes) except in families whose formulas carry peroxide (oxychlorides
from Na2O2); ``allow_peroxide`` overrides.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from featurize import elements as el
from featurize.composition import CompositionError, parse_formula
from featurize.oxidation import assign_oxidation_states, cation_states
from models.targets import TargetName
from screening.ranking import RankingConfig, parse_ranking
from screening.templates import PLACEHOLDERS, VALENCE_NAMES, FormulaTemplate, TemplateError, parse_template

__all__ = [
    "COMPENSATION_MODES",
    "DEFAULT_MAX_CANDIDATES",
    "DOPANT_GROUPS",
    "FAMILIES",
    "MODEL_ELEMENTS_GROUP",
    "Compensation",
    "Conditions",
    "DopantOption",
    "Family",
    "Grid",
    "ScreeningSpec",
    "SpecError",
    "expand_dopants",
    "parse_spec",
]

DEFAULT_MAX_CANDIDATES = 10_000_000
COMPENSATION_MODES = ("na_content", "variable_valence", "vacancy", "none")
MODEL_ELEMENTS_GROUP = "model_elements"


class SpecError(ValueError):
    """An invalid screening spec; the message starts with the field (``dopants: unknown element 'Xx'``)."""


@dataclass(frozen=True)
class Family:
    name: str
    kind: str  # "cathode" | "electrolyte"
    targets: tuple[TargetName, ...]
    structure_type: str | None
    description: str
    allow_peroxide: bool = False  # O may rise above -2 (formulas written from Na2O2)


_CATHODE = (TargetName.AVERAGE_VOLTAGE, TargetName.CAPACITY_RETENTION)
_ELECTROLYTE = (TargetName.IONIC_CONDUCTIVITY,)
FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("p2_layered_oxide", "cathode", _CATHODE, "P2", "P2-type layered oxide cathode"),
        Family("o3_layered_oxide", "cathode", _CATHODE, "O3", "O3-type layered oxide cathode"),
        Family("p3_layered_oxide", "cathode", _CATHODE, "P3", "P3-type layered oxide cathode"),
        Family("layered_oxide", "cathode", _CATHODE, None, "layered oxide cathode, stacking unspecified"),
        Family("polyanion_cathode", "cathode", _CATHODE, None, "polyanion cathode"),
        Family("oxychloride", "electrolyte", _ELECTROLYTE, None, "(amorphous) oxychloride electrolyte", True),
        Family("halide", "electrolyte", _ELECTROLYTE, None, "crystalline halide electrolyte"),
        Family("nasicon", "electrolyte", _ELECTROLYTE, None, "NASICON oxide electrolyte"),
        Family("sulfide", "electrolyte", _ELECTROLYTE, None, "sulfide electrolyte"),
        Family("oxide_electrolyte", "electrolyte", _ELECTROLYTE, None, "oxide electrolyte"),
    )
}

_TM_4D_5D = el.TRANSITION_METALS_4D | el.TRANSITION_METALS_5D
DOPANT_GROUPS: dict[str, frozenset[str]] = {
    "3d_tm": el.TRANSITION_METALS_3D,
    "4d_tm": el.TRANSITION_METALS_4D,
    "5d_tm": el.TRANSITION_METALS_5D,
    "4d_5d_tm": _TM_4D_5D,
    "transition_metals": el.TRANSITION_METALS,
    "lanthanides": el.LANTHANIDES,
    "rare_earths": el.RARE_EARTHS,
    "alkali_metals": el.ALKALI_METALS,
    "alkaline_earth_metals": el.ALKALINE_EARTH_METALS,
    "post_transition_metals": el.POST_TRANSITION_METALS,
    "metalloids": el.METALLOIDS,
    "triels": el.TRIELS,
    "tetrels": el.TETRELS,
    "pnictogens": el.PNICTOGENS,
}
_GROUP_ALIASES = {
    "3d_transition_metals": "3d_tm",
    "4d_transition_metals": "4d_tm",
    "5d_transition_metals": "5d_tm",
    "4d_and_5d_transition_metals": "4d_5d_tm",
    "4d_and_5d_tm": "4d_5d_tm",
    "4d5d_tm": "4d_5d_tm",
    "tm": "transition_metals",
    "every_element_the_model_knows": MODEL_ELEMENTS_GROUP,
    "all_model_elements": MODEL_ELEMENTS_GROUP,
    "model_elements": MODEL_ELEMENTS_GROUP,
}

_FIELDS = {
    "name": "identifier of the screen (file names, MLflow run name)",
    "description": "free text",
    "family": "material family: " + ", ".join(FAMILIES),
    "targets": "subset of the family's targets to score",
    "host": "host / reference formula",
    "site": "element of the host that the dopant replaces",
    "dopants": "element symbols and/or group names",
    "exclude": "elements removed from the dopant list",
    "fractions": "dopant amount grid (list or {start, stop, step})",
    "codoping": "{dopants, fractions, site}",
    "compensation": "na_content | variable_valence | vacancy | none (or a mapping with mode)",
    "valences": "dopant valence overrides {element: valence or [valences]}",
    "valence_policy": "preferred | all",
    "template": "{formula, variables}",
    "conditions": "{cycles, current_mA_g, voltage_low_V, voltage_high_V, working_ion}",
    "ranking": "ranking settings (screening.ranking)",
    "decimals": "decimals of amounts in candidate formulas (default 4)",
    "max_candidates": "cap on the number of candidates",
    "allow_peroxide": "let O rise above -2 in the neutrality check (default: family)",
}


@dataclass(frozen=True)
class DopantOption:
    element: str
    valence: float


@dataclass(frozen=True)
class Grid:
    name: str
    values: tuple[float, ...]


@dataclass(frozen=True)
class Compensation:
    mode: str
    element: str | None = None  # Na for na_content, the variable metal, or the vacancy site
    valence_range: tuple[float, float] | None = None  # variable_valence only


@dataclass(frozen=True)
class Conditions:
    cycles: float | None = None
    current_mA_g: float | None = None
    voltage_low_V: float | None = None
    voltage_high_V: float | None = None
    working_ion: str = "Na"


@dataclass(frozen=True)
class ScreeningSpec:
    """A validated screen. Everything a worker needs to regenerate any chunk of candidates."""

    name: str
    family: Family
    host: str  # as written
    host_formula: str  # canonical (parse_formula)
    host_elements: tuple[str, ...]  # written order
    host_states: tuple[tuple[str, float], ...]  # oxidation state per host element
    form: str  # "substitution" | "template"
    templates: tuple[FormulaTemplate, ...]
    site: str | None
    site2: str | None
    dopants: tuple[DopantOption, ...]
    dopants2: tuple[DopantOption, ...]
    grids: tuple[Grid, ...]
    compensation: Compensation
    conditions: Conditions
    targets: tuple[TargetName, ...]
    ranking: RankingConfig
    decimals: int = 4
    max_candidates: int = DEFAULT_MAX_CANDIDATES
    allow_peroxide: bool = False
    description: str = ""
    notes: tuple[str, ...] = ()
    source: str = field(default="{}", compare=False)  # the input mapping as JSON (for logging)

    @property
    def codoped(self) -> bool:
        return bool(self.dopants2)

    def state(self, element: str) -> float | None:
        return dict(self.host_states).get(element)

    def to_dict(self) -> dict[str, Any]:
        """The input mapping (JSON-safe), for logging with the run."""
        out: dict[str, Any] = json.loads(self.source)
        return out


# ---------------------------------------------------------------------------------------------- helpers
def _normalise_group(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def common_positive_states(element: str) -> tuple[int, ...]:
    """Integer cation states of ``element`` in featurize.oxidation's table (empty: never a cation)."""
    cs = cation_states(element)
    if cs is None:
        return ()
    return tuple(range(math.ceil(cs.lo), math.floor(cs.hi) + 1))


def preferred_state(element: str) -> float:
    cs = cation_states(element)
    if cs is None:
        raise SpecError(f"dopants: {element} never takes a positive oxidation state")
    return float(cs.preferred)


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise SpecError(f"{where}: {value!r} is not a number")
    try:
        out = float(value)
    except ValueError:
        raise SpecError(f"{where}: {value!r} is not a number") from None
    if not math.isfinite(out):
        raise SpecError(f"{where}: {value!r} is not a finite number")
    return out


def parse_grid(value: object, name: str, where: str) -> Grid:
    """A list of numbers, ``{start, stop, step}`` (stop included), ``{values: [...]}``, or the CLI
    string forms ``"0.05:0.2:0.05"`` (start:stop:step) and ``"0.05,0.1,0.2"``."""
    if isinstance(value, str) and ":" in value:
        parts = value.split(":")
        if len(parts) != 3:
            raise SpecError(f"{where}: {value!r} is not start:stop:step")
        value = dict(zip(("start", "stop", "step"), (p.strip() for p in parts), strict=True))
    elif isinstance(value, str) and "," in value:
        value = [p.strip() for p in value.split(",") if p.strip()]
    if isinstance(value, Mapping):
        if "values" in value:
            return parse_grid(value["values"], name, where)
        missing = [k for k in ("start", "stop", "step") if k not in value]
        if missing:
            raise SpecError(f"{where}: needs a list or start/stop/step (missing {', '.join(missing)})")
        extra = set(value) - {"start", "stop", "step"}
        if extra:
            raise SpecError(f"{where}: unknown key(s) {sorted(extra)} (use start, stop, step)")
        start = _number(value["start"], f"{where}.start")
        stop = _number(value["stop"], f"{where}.stop")
        step = _number(value["step"], f"{where}.step")
        if step <= 0:
            raise SpecError(f"{where}.step: must be > 0, got {step}")
        if stop < start:
            raise SpecError(f"{where}: empty grid (stop {stop} < start {start})")
        n = math.floor((stop - start) / step + 1e-9) + 1
        if n > 10_000_000:
            raise SpecError(f"{where}: {n} grid points is too many")
        values = tuple(round(start + i * step, 10) for i in range(n))
    elif isinstance(value, int | float | str) and not isinstance(value, bool):
        values = (_number(value, where),)
    elif isinstance(value, Sequence):
        values = tuple(_number(v, f"{where}[{i}]") for i, v in enumerate(value))
    else:
        raise SpecError(f"{where}: needs a list of numbers or start/stop/step, got {value!r}")
    if not values:
        raise SpecError(f"{where}: empty grid")
    if len(set(values)) != len(values):
        raise SpecError(f"{where}: duplicate values in {list(values)}")
    return Grid(name=name, values=values)


def expand_dopants(
    value: object,
    where: str,
    *,
    exclude: frozenset[str] = frozenset(),
    model_elements: frozenset[str] | None = None,
) -> tuple[str, ...]:
    """Element symbols and group names -> sorted (by Z) unique symbols. Groups drop radioactive and
    noble-gas elements, elements with no positive common state, and ``exclude``; explicit symbols are
    kept as given (and must be elements)."""
    if isinstance(value, str) and "," in value:  # "Ru, Ir, 4d_tm" from a CLI flag
        value = [v.strip() for v in value.split(",") if v.strip()]
    items: list[object] = (
        [value] if isinstance(value, str) else list(value) if isinstance(value, Sequence) else []
    )
    if not items:
        raise SpecError(f"{where}: needs element symbols or group names, got {value!r}")
    chosen: set[str] = set()
    for item in items:
        if not isinstance(item, str):
            raise SpecError(f"{where}: {item!r} is not an element symbol or group name")
        if el.is_element(item):
            if item in exclude:
                raise SpecError(f"{where}: {item} is the substituted site or excluded; it cannot be a dopant")
            if not common_positive_states(item):
                raise SpecError(f"{where}: {item} never takes a positive oxidation state")
            chosen.add(item)
            continue
        key = _normalise_group(item)
        key = _GROUP_ALIASES.get(key, key)
        if key == MODEL_ELEMENTS_GROUP:
            if model_elements is None:
                raise SpecError(
                    f"{where}: {item!r} needs the set of elements the models were trained on "
                    "(pass model_elements=...)"
                )
            members = frozenset(model_elements)
        elif key in DOPANT_GROUPS:
            members = DOPANT_GROUPS[key]
        else:
            groups = ", ".join([*DOPANT_GROUPS, MODEL_ELEMENTS_GROUP])
            raise SpecError(f"{where}: unknown element or group {item!r} (groups: {groups})")
        for sym in members:
            if not el.is_element(sym):
                raise SpecError(f"{where}: model element {sym!r} is not an element")
            if sym in el.RADIOACTIVE or sym in el.NOBLE_GASES or sym in exclude:
                continue
            if common_positive_states(sym):
                chosen.add(sym)
    if not chosen:
        raise SpecError(f"{where}: no dopant left after expanding {value!r}")
    return tuple(sorted(chosen, key=el.atomic_number))


def _valence_options(
    symbols: tuple[str, ...], overrides: Mapping[str, object], policy: str, where: str
) -> tuple[DopantOption, ...]:
    out: list[DopantOption] = []
    for sym in symbols:
        if sym in overrides:
            raw = overrides[sym]
            vals = raw if isinstance(raw, Sequence) and not isinstance(raw, str) else [raw]
            valences = [_number(v, f"valences.{sym}") for v in vals]
            for v in valences:
                if not 0 < v <= 8:
                    raise SpecError(f"valences.{sym}: {v} is not a cation valence in (0, 8]")
        else:
            states = common_positive_states(sym)
            valences = [float(s) for s in states] if policy == "all" else [preferred_state(sym)]
        out.extend(DopantOption(sym, v) for v in valences)
    if not out:
        raise SpecError(f"{where}: no dopant options")
    return tuple(out)


def _conditions(value: object, family: Family) -> Conditions:
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise SpecError(f"conditions: needs a mapping, got {value!r}")
    known = {"cycles", "current_mA_g", "voltage_low_V", "voltage_high_V", "working_ion"}
    extra = set(value) - known
    if extra:
        raise SpecError(f"conditions: unknown field(s) {sorted(extra)} (known: {sorted(known)})")
    nums = {k: _number(value[k], f"conditions.{k}") for k in known - {"working_ion"} if k in value}
    ion = value.get("working_ion", "Na")
    if not isinstance(ion, str) or not el.is_element(ion):
        raise SpecError(f"conditions.working_ion: {ion!r} is not an element")
    if family.kind == "cathode":
        missing = [k for k in ("cycles", "current_mA_g", "voltage_low_V", "voltage_high_V") if k not in nums]
        if missing:
            raise SpecError(
                f"conditions: a {family.name} screen predicts capacity retention, which needs "
                f"{', '.join(missing)} (cycle count, current in mA/g and voltage window)"
            )
    for k, v in nums.items():
        if v <= 0:
            raise SpecError(f"conditions.{k}: must be > 0, got {v}")
    if (
        "voltage_low_V" in nums
        and "voltage_high_V" in nums
        and nums["voltage_low_V"] >= nums["voltage_high_V"]
    ):
        raise SpecError("conditions: voltage_low_V must be below voltage_high_V")
    return Conditions(working_ion=ion, **nums)


def _compensation(value: object, form: str, host: Mapping[str, float], site: str | None) -> Compensation:
    if value is None:
        value = "none" if form == "template" else None
    if value is None:
        raise SpecError(f"compensation: required for a substitution screen ({', '.join(COMPENSATION_MODES)})")
    raw: Mapping[str, Any] = (
        {"mode": value} if isinstance(value, str) else value if isinstance(value, Mapping) else {}
    )
    mode = raw.get("mode")
    if mode not in COMPENSATION_MODES:
        raise SpecError(f"compensation: unknown mode {mode!r} (known: {', '.join(COMPENSATION_MODES)})")
    extra = set(raw) - {"mode", "element", "site", "range"}
    if extra:
        raise SpecError(f"compensation: unknown field(s) {sorted(extra)} (known: mode, element, site, range)")
    if form == "template" and mode != "none":
        raise SpecError(
            "compensation: a template writes its compensation into the formula through the dopant valence "
            "v (e.g. Na{2+x*(4-v)}); use compensation: none"
        )
    if mode == "none":
        return Compensation("none")
    element = raw.get("element", raw.get("site"))
    if mode == "na_content":
        element = element or "Na"
    elif mode == "variable_valence":
        element = element or site
    elif element is None:
        raise SpecError(
            "compensation.site: vacancy compensation needs the element whose site takes the vacancies"
        )
    if not isinstance(element, str) or element not in host:
        raise SpecError(f"compensation: element {element!r} is not in the host ({', '.join(host)})")
    rng: tuple[float, float] | None = None
    if mode == "variable_valence":
        if "range" in raw:
            r = raw["range"]
            if not isinstance(r, Sequence) or isinstance(r, str) or len(r) != 2:
                raise SpecError(f"compensation.range: needs [low, high], got {r!r}")
            lo, hi = (_number(v, "compensation.range") for v in r)
            if lo > hi:
                raise SpecError(f"compensation.range: low {lo} above high {hi}")
            rng = (lo, hi)
        else:
            cs = cation_states(element)
            if cs is None or cs.hi <= cs.lo:
                raise SpecError(f"compensation.element: {element} has no variable valence (give range)")
            rng = (float(cs.lo), float(cs.hi))
    elif "range" in raw:
        raise SpecError("compensation.range: only for variable_valence")
    return Compensation(mode=mode, element=element, valence_range=rng)


def _fmt(value: float) -> str:
    return repr(float(value))


def _substitution_template(
    host: Mapping[str, float],
    order: tuple[str, ...],
    site: str,
    site2: str | None,
    comp: Compensation,
    states: Mapping[str, float],
) -> str:
    """Write the substitution as a template: site - x, + {M}{x} after the site, compensation via v."""
    charge = f"x*(v - {_fmt(states[site])})"
    if site2 is not None:
        charge += f" + x2*(v2 - {_fmt(states[site2])})"
    parts: list[str] = []
    for sym in order:
        expr = _fmt(host[sym])
        if sym == site:
            expr += " - x"
        if sym == site2:
            expr += " - x2"
        if comp.mode in ("na_content", "vacancy") and sym == comp.element:
            expr += f" - ({charge})/{_fmt(states[sym])}"
        parts.append(f"{sym}{{{expr}}}")
        if sym == site:
            parts.append("{M}{x}")
        if sym == site2:
            parts.append("{M2}{x2}")
    return "".join(parts)


def _written_order(text: str, elements: Sequence[str]) -> tuple[str, ...]:
    seen: list[str] = []
    for tok in re.findall(r"[A-Z][a-z]?", text):
        if tok in elements and tok not in seen:
            seen.append(tok)
    seen.extend(e for e in elements if e not in seen)
    return tuple(seen)


def format_amount(value: float, decimals: int) -> str:
    """Amount as written in a candidate formula: fixed decimals, trailing zeros stripped, 1 omitted."""
    text = f"{value:.{decimals}f}".rstrip("0").rstrip(".")
    return "" if text == "1" else text


def _host(
    value: object, decimals: int, allow_peroxide: bool
) -> tuple[str, dict[str, float], tuple[str, ...], str, dict[str, float]]:
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"host: needs a formula, got {value!r}")
    try:
        comp = parse_formula(value)
    except CompositionError as exc:
        raise SpecError(f"host: {exc}") from None
    order = _written_order(value, tuple(comp.as_dict()))
    amounts = {s: comp.as_dict()[s] for s in order}
    formula = "".join(f"{s}{format_amount(amounts[s], decimals)}" for s in order)
    oxi = assign_oxidation_states(comp, allow_peroxide=allow_peroxide)
    if not oxi.balanced:
        raise SpecError(f"host: {value!r} is not charge balanced ({oxi.reason})")
    return value, amounts, order, formula, dict(oxi.states)


def _check_fields(mapping: Mapping[str, Any], known: Mapping[str, str] | set[str], where: str) -> None:
    extra = [k for k in mapping if k not in known]
    if extra:
        raise SpecError(f"{where}: unknown field(s) {extra} (known: {', '.join(known)})")


def parse_spec(
    mapping: Mapping[str, Any],
    *,
    model_elements: frozenset[str] | None = None,
    max_candidates: int | None = None,
) -> ScreeningSpec:
    """Validate a spec mapping. ``model_elements`` resolves the dopant group ``model_elements`` (the
    elements in the training data of the relevant targets; the caller knows the models).
    ``max_candidates`` overrides the spec's cap."""
    if not isinstance(mapping, Mapping):
        raise SpecError(f"spec: needs a mapping, got {type(mapping).__name__}")
    _check_fields(mapping, _FIELDS, "spec")
    name = mapping.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}", name):
        raise SpecError(f"name: needs letters, digits, '_', '.', '-' (max 100), got {name!r}")
    fam_name = mapping.get("family")
    if fam_name not in FAMILIES:
        raise SpecError(f"family: unknown family {fam_name!r} (known: {', '.join(FAMILIES)})")
    family = FAMILIES[str(fam_name)]
    targets = family.targets
    if "targets" in mapping:
        raw_t = mapping["targets"]
        raw_list = [raw_t] if isinstance(raw_t, str) else list(raw_t) if isinstance(raw_t, Sequence) else []
        if not raw_list:
            raise SpecError(f"targets: needs a list of target names, got {raw_t!r}")
        for t in raw_list:
            if t not in {x.value for x in family.targets}:
                raise SpecError(
                    f"targets: {t!r} is not a target of family {family.name} ({list(family.targets)})"
                )
        targets = tuple(TargetName(t) for t in raw_list)
    decimals = mapping.get("decimals", 4)
    if isinstance(decimals, bool) or not isinstance(decimals, int) or not 2 <= decimals <= 8:
        raise SpecError(f"decimals: needs an integer in 2..8, got {decimals!r}")
    cap = (
        max_candidates
        if max_candidates is not None
        else mapping.get("max_candidates", DEFAULT_MAX_CANDIDATES)
    )
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
        raise SpecError(f"max_candidates: needs a positive integer, got {cap!r}")
    policy = mapping.get("valence_policy", "preferred")
    if policy not in ("preferred", "all"):
        raise SpecError(f"valence_policy: {policy!r} (known: preferred, all)")
    overrides = mapping.get("valences", {}) or {}
    if not isinstance(overrides, Mapping) or not all(el.is_element(k) for k in overrides):
        raise SpecError(f"valences: needs {{element: valence}}, got {overrides!r}")

    peroxide = mapping.get("allow_peroxide", family.allow_peroxide)
    if not isinstance(peroxide, bool):
        raise SpecError(f"allow_peroxide: needs true/false, got {peroxide!r}")
    host_text, host, order, host_formula, states = _host(mapping.get("host"), decimals, peroxide)
    exclude_raw = mapping.get("exclude", [])
    exclude_list = [exclude_raw] if isinstance(exclude_raw, str) else list(exclude_raw)
    for x in exclude_list:
        if not el.is_element(x):
            raise SpecError(f"exclude: unknown element {x!r}")
    exclude = frozenset(exclude_list)

    codoping = mapping.get("codoping")
    if codoping is not None:
        if not isinstance(codoping, Mapping):
            raise SpecError(f"codoping: needs a mapping {{dopants, fractions, site}}, got {codoping!r}")
        _check_fields(codoping, {"dopants", "fractions", "site"}, "codoping")

    form = "template" if "template" in mapping else "substitution"
    if form == "substitution" and "site" in mapping and mapping["site"] not in host:
        raise SpecError(f"site: {mapping['site']!r} is not an element of the host {host_text!r}")
    comp = _compensation(mapping.get("compensation"), form, host, mapping.get("site"))
    dopants2: tuple[DopantOption, ...] = ()
    site2: str | None = None
    site: str | None = None
    templates: tuple[FormulaTemplate, ...]
    if form == "substitution":
        for key in ("site", "dopants", "fractions"):
            if key not in mapping:
                raise SpecError(f"{key}: required for a substitution screen (or give a template)")
        site = mapping["site"]
        if site not in host:
            raise SpecError(f"site: {site!r} is not an element of the host {host_text!r}")
        dop = expand_dopants(
            mapping["dopants"], "dopants", exclude=exclude | {site}, model_elements=model_elements
        )
        dopants = _valence_options(dop, overrides, policy, "dopants")
        grids = [parse_grid(mapping["fractions"], "x", "fractions")]
        if codoping is not None:
            site2 = codoping.get("site", site)
            if site2 not in host:
                raise SpecError(f"codoping.site: {site2!r} is not an element of the host {host_text!r}")
            if "dopants" not in codoping or "fractions" not in codoping:
                raise SpecError("codoping: needs dopants and fractions")
            dop2 = expand_dopants(
                codoping["dopants"],
                "codoping.dopants",
                exclude=exclude | {site2},
                model_elements=model_elements,
            )
            dopants2 = _valence_options(dop2, overrides, policy, "codoping.dopants")
            grids.append(parse_grid(codoping["fractions"], "x2", "codoping.fractions"))
        for g, s, where in zip(grids, (site, site2), ("fractions", "codoping.fractions"), strict=False):
            assert s is not None
            for v in g.values:
                if not 0 < v <= host[s] + 1e-12:
                    raise SpecError(
                        f"{where}: {v} out of range (0, {host[s]:g}] for site {s} of {host_text!r}"
                    )
        if comp.element is not None and comp.mode != "variable_valence" and states.get(comp.element, 0) == 0:
            raise SpecError(
                f"compensation: {comp.element} has oxidation state 0 in the host; it cannot compensate"
            )
        text = _substitution_template(host, order, site, site2, comp, states)
        templates = (parse_template(text, {g.name for g in grids}),)
    else:
        for key in ("site", "fractions"):
            if key in mapping:
                raise SpecError(f"{key}: not used with a template (put the grid under template.variables)")
        tmpl = mapping["template"]
        if not isinstance(tmpl, Mapping):
            raise SpecError(f"template: needs {{formula, variables}}, got {tmpl!r}")
        _check_fields(tmpl, {"formula", "variables"}, "template")
        variables = tmpl.get("variables") or {}
        if not isinstance(variables, Mapping):
            raise SpecError(f"template.variables: needs {{name: grid}}, got {variables!r}")
        grids = [parse_grid(v, str(k), f"template.variables.{k}") for k, v in variables.items()]
        texts = tmpl.get("formula")
        text_list = [texts] if isinstance(texts, str) else list(texts) if isinstance(texts, Sequence) else []
        if not text_list:
            raise SpecError(f"template.formula: needs a template string or a list of them, got {texts!r}")
        compiled = []
        for i, t in enumerate(text_list):
            where = "template.formula" if isinstance(texts, str) else f"template.formula[{i}]"
            try:
                ft = parse_template(t, {g.name for g in grids})
            except TemplateError as exc:
                raise SpecError(f"{where}: {exc}") from None
            unused = {g.name for g in grids} - ft.names
            if unused:
                raise SpecError(
                    f"{where}: variable(s) {sorted(unused)} not used (they would repeat candidates)"
                )
            compiled.append(ft)
        templates = tuple(compiled)
        placeholders = {p for ft in templates for p in ft.placeholders}
        if any(set(ft.placeholders) != placeholders for ft in templates):
            raise SpecError("template.formula: every template must use the same placeholders ({M}, {M2})")
        if "M" in placeholders:
            if "dopants" not in mapping:
                raise SpecError("dopants: the template uses {M}; list the elements it runs over")
            dop = expand_dopants(
                mapping["dopants"], "dopants", exclude=exclude, model_elements=model_elements
            )
            dopants = _valence_options(dop, overrides, policy, "dopants")
        elif "dopants" in mapping:
            raise SpecError("dopants: the template has no {M} placeholder")
        else:
            dopants = ()
        if "M2" in placeholders:
            if codoping is None or "dopants" not in codoping:
                raise SpecError("codoping.dopants: the template uses {M2}; list the elements it runs over")
            if "fractions" in codoping or "site" in codoping:
                raise SpecError("codoping: with a template only codoping.dopants is used")
            dop2 = expand_dopants(
                codoping["dopants"], "codoping.dopants", exclude=exclude, model_elements=model_elements
            )
            dopants2 = _valence_options(dop2, overrides, policy, "codoping.dopants")
        elif codoping is not None:
            raise SpecError("codoping: the template has no {M2} placeholder")

    for g in grids:
        for value in g.values:
            if abs(round(value, decimals) - value) > 1e-12:
                raise SpecError(
                    f"{_grid_field(form, g.name)}: {value} has more than {decimals} decimals; candidate "
                    "formulas are written with `decimals` decimals (raise decimals or round the grid)"
                )
    if policy == "all" or any(isinstance(v, Sequence) and not isinstance(v, str) for v in overrides.values()):
        uses_v = any(VALENCE_NAMES[p] in t.names for t in templates for p in PLACEHOLDERS)
        if not uses_v:
            raise SpecError(
                "valence_policy: several valences per dopant give the same formula here (the formula does "
                f"not depend on the valence with compensation {comp.mode}); use one valence per dopant"
            )
    try:
        ranking = parse_ranking(mapping.get("ranking") or {}, targets)
    except ValueError as exc:
        raise SpecError(f"ranking: {exc}") from None
    spec = ScreeningSpec(
        name=name,
        family=family,
        host=host_text,
        host_formula=host_formula,
        host_elements=order,
        host_states=tuple((s, float(states[s])) for s in order if s in states),
        form=form,
        templates=templates,
        site=site,
        site2=site2,
        dopants=dopants,
        dopants2=dopants2,
        grids=tuple(grids),
        compensation=comp,
        conditions=_conditions(mapping.get("conditions"), family),
        targets=targets,
        ranking=ranking,
        decimals=decimals,
        max_candidates=cap,
        allow_peroxide=peroxide,
        description=str(mapping.get("description", "")),
        source=json.dumps(mapping, sort_keys=True, default=str),
    )
    n = candidate_space_size(spec)
    if n > cap:
        raise SpecError(
            f"max_candidates: the grid has {n:,} candidates, above the cap {cap:,} "
            "(shrink dopants/fractions or raise max_candidates)"
        )
    return spec


def _grid_field(form: str, name: str) -> str:
    if form == "template":
        return f"template.variables.{name}"
    return "fractions" if name == "x" else "codoping.fractions"


def candidate_space_size(spec: ScreeningSpec) -> int:
    """Number of candidates including the host reference (row 0)."""
    n = len(spec.templates) * max(len(spec.dopants), 1) * max(len(spec.dopants2), 1)
    for g in spec.grids:
        n *= len(g.values)
    return 1 + n
