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
                                            # screening.ranking.parse_ranking; per objective
                                            # by: value | delta | p_better (vs the reference)
    reference: Na0.6Li0.2Mn0.8O2            # what delta / P(better) compare with (default: the host)
    anchors: {capacity_retention: [{formula: Na0.6Li0.2Mn0.8O2, cycles: 200, measured: 45.5}]}
                                            # your measured rows (conditions default to the spec's);
                                            # a list when the spec screens one target; in a spec file
                                            # also a CSV path (relative to the spec), see spec_io
    decimals: 4                             # amounts in candidate formulas
    max_candidates: 10000000                # cap; larger grids are refused
    allow_peroxide: false                   # default true only for oxychlorides (Na2O2)
    phase: amorphous                        # crystalline | amorphous | glass | glass-ceramic | unknown
                                            # (default): the phase the conductivity model predicts

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
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from featurize import elements as el
from featurize.composition import CompositionError, parse_formula
from featurize.oxidation import assign_oxidation_states, cation_states
from models.conditions import DEFAULT_WORKING_ION, NUMERIC_CONDITIONS
from models.phase import DEFAULT_PHASE
from models.targets import TargetName
from screening.families import FAMILIES, Family
from screening.ranking import RankingConfig, parse_ranking
from screening.spec_forms import (
    CompensationForm,
    CompensationMode,
    ConditionsForm,
    SpecError,
    SpecForm,
    TemplateForm,
    field_message,
    grid_values,
    symbol_list,
)
from screening.templates import PLACEHOLDERS, VALENCE_NAMES, FormulaTemplate, TemplateError, parse_template

__all__ = [
    "COMPENSATION_MODES",
    "DEFAULT_MAX_CANDIDATES",
    "DOPANT_GROUPS",
    "FAMILIES",
    "MODEL_ELEMENTS_GROUP",
    "Anchor",
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
COMPENSATION_MODES = tuple(m.value for m in CompensationMode)
MODEL_ELEMENTS_GROUP = "model_elements"


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
GROUP_ALIASES = {
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


@dataclass(frozen=True)
class DopantOption:
    """A dopant element at one valence (a dopant with several valences gives several options)."""

    element: str
    valence: float


@dataclass(frozen=True)
class Grid:
    """The values of one grid variable (``x``, ``x2`` or a template variable), in declared order."""

    name: str
    values: tuple[float, ...]


@dataclass(frozen=True)
class Compensation:
    """How dopant charge is compensated, by which element, within which valence range."""

    mode: CompensationMode
    element: str | None = None  # Na for na_content, the variable metal, or the vacancy site
    valence_range: tuple[float, float] | None = None  # variable_valence only


@dataclass(frozen=True)
class Conditions:
    """Battery test conditions the targets are predicted under (None: not given); the fields are
    ``models.conditions.CONDITION_COLUMNS`` (tests/service/test_conditions_edges.py holds them equal)."""

    cycles: float | None = None
    current_mA_g: float | None = None
    voltage_low_V: float | None = None
    voltage_high_V: float | None = None
    working_ion: str = DEFAULT_WORKING_ION


@dataclass(frozen=True)
class Anchor:
    """One of the user's measured rows, for one target (conditions None: the spec's)."""

    target: TargetName
    formula: str
    measured: float
    cycles: float | None = None
    current_mA_g: float | None = None
    voltage_low_V: float | None = None
    voltage_high_V: float | None = None
    working_ion: str | None = None


@dataclass(frozen=True)
class ScreeningSpec:
    """A validated screen. Everything a worker needs to regenerate any chunk of candidates."""

    name: str
    family: Family
    host: str  # as written
    host_formula: str  # canonical (parse_formula)
    host_elements: tuple[str, ...]  # written order
    host_states: tuple[tuple[str, float], ...]  # oxidation state per host element
    form: Literal["substitution", "template"]
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
    reference: str = ""  # delta / P(better) are vs this formula (the host unless the spec names another)
    anchors: tuple[Anchor, ...] = ()
    decimals: int = 4
    max_candidates: int = DEFAULT_MAX_CANDIDATES
    allow_peroxide: bool = False
    phase: str = DEFAULT_PHASE  # models.phase.PHASES: the phase every candidate is predicted in
    description: str = ""
    notes: tuple[str, ...] = ()
    source: str = field(default="{}", compare=False)  # the input mapping as JSON (for logging)

    @property
    def codoped(self) -> bool:
        return bool(self.dopants2)

    def state(self, element: str) -> float | None:
        return dict(self.host_states).get(element)

    def anchor_rows(self, target: TargetName) -> list[dict[str, Any]]:
        """The anchors of ``target`` as input rows (formula, conditions, ``measured``), each condition the
        row leaves out taken from the spec's conditions (what the candidates are predicted under)."""
        rows = []
        for a in self.anchors:
            if a.target is not target:
                continue
            row: dict[str, Any] = {"formula": a.formula}
            for name in ("cycles", "current_mA_g", "voltage_low_V", "voltage_high_V", "working_ion"):
                own = getattr(a, name)
                row[name] = own if own is not None else getattr(self.conditions, name)
            row["measured"] = a.measured
            rows.append(row)
        return rows

    def to_dict(self) -> dict[str, Any]:
        """The input mapping (JSON-safe), for logging with the run."""
        out: dict[str, Any] = json.loads(self.source)
        return out


# ---------------------------------------------------------------------------------------------- helpers
def normalise_group(name: str) -> str:
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


def parse_grid(value: object, name: str, where: str) -> Grid:
    """A list of numbers, ``{start, stop, step}`` (stop included), ``{values: [...]}``, or the CLI
    string forms ``"0.05:0.2:0.05"`` (start:stop:step) and ``"0.05,0.1,0.2"``."""
    return Grid(name=name, values=grid_values(value, where))


def _group_members(item: str, where: str, model_elements: frozenset[str] | None) -> frozenset[str]:
    key = normalise_group(item)
    key = GROUP_ALIASES.get(key, key)
    if key == MODEL_ELEMENTS_GROUP:
        if model_elements is None:
            raise SpecError(
                f"{where}: {item!r} needs the set of elements the models were trained on "
                "(pass model_elements=...)"
            )
        return frozenset(model_elements)
    if key in DOPANT_GROUPS:
        return DOPANT_GROUPS[key]
    groups = ", ".join([*DOPANT_GROUPS, MODEL_ELEMENTS_GROUP])
    raise SpecError(f"{where}: unknown element or group {item!r} (groups: {groups})")


def expand_dopants(
    value: str | Sequence[str],
    where: str,
    *,
    exclude: frozenset[str] = frozenset(),
    model_elements: frozenset[str] | None = None,
) -> tuple[str, ...]:
    """Element symbols and group names -> sorted (by Z) unique symbols. Groups drop radioactive and
    noble-gas elements, elements with no positive common state, and ``exclude``; explicit symbols are
    kept as given (and must be elements)."""
    try:
        items: list[object] = list(symbol_list(value))
    except ValueError as exc:
        raise SpecError(field_message(where, exc)) from None
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
        members = _group_members(item, where, model_elements)
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
    symbols: tuple[str, ...], overrides: Mapping[str, tuple[float, ...]], policy: str, where: str
) -> tuple[DopantOption, ...]:
    out: list[DopantOption] = []
    for sym in symbols:
        if sym in overrides:
            valences = list(overrides[sym])
        else:
            states = common_positive_states(sym)
            valences = [float(s) for s in states] if policy == "all" else [preferred_state(sym)]
        out.extend(DopantOption(sym, v) for v in valences)
    if not out:
        raise SpecError(f"{where}: no dopant options")
    return tuple(out)


def _conditions(form: ConditionsForm, family: Family) -> Conditions:
    if not el.is_element(form.working_ion):
        raise SpecError(f"conditions.working_ion: {form.working_ion!r} is not an element")
    nums = form.numbers()
    if family.kind == "cathode":
        missing = [k for k in NUMERIC_CONDITIONS if k not in nums]
        if missing:
            raise SpecError(
                f"conditions: a {family.name} screen predicts capacity retention, which needs "
                f"{', '.join(missing)} (cycle count, current in mA/g and voltage window)"
            )
    return Conditions(working_ion=form.working_ion, **nums)


def _compensation(
    form: CompensationForm | None, kind: str, host: Mapping[str, float], site: str | None
) -> Compensation:
    if form is None and kind == "template":
        return Compensation(CompensationMode.NONE)
    if form is None:
        raise SpecError(f"compensation: required for a substitution screen ({', '.join(COMPENSATION_MODES)})")
    mode = form.mode
    if kind == "template" and mode != CompensationMode.NONE:
        raise SpecError(
            "compensation: a template writes its compensation into the formula through the dopant valence "
            "v (e.g. Na{2+x*(4-v)}); use compensation: none"
        )
    if mode == CompensationMode.NONE:
        return Compensation(mode)
    element = form.element or form.site
    if mode == CompensationMode.NA_CONTENT:
        element = element or "Na"
    elif mode == CompensationMode.VARIABLE_VALENCE:
        element = element or site
    elif element is None:
        raise SpecError(
            "compensation.site: vacancy compensation needs the element whose site takes the vacancies"
        )
    if element is None or element not in host:
        raise SpecError(f"compensation: element {element!r} is not in the host ({', '.join(host)})")
    if mode != CompensationMode.VARIABLE_VALENCE:
        if form.range is not None:
            raise SpecError("compensation.range: only for variable_valence")
        return Compensation(mode=mode, element=element)
    rng = form.range
    if rng is None:
        cs = cation_states(element)
        if cs is None or cs.hi <= cs.lo:
            raise SpecError(f"compensation.element: {element} has no variable valence (give range)")
        rng = (float(cs.lo), float(cs.hi))
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


@dataclass(frozen=True)
class _Host:
    text: str  # as written
    amounts: dict[str, float]  # written order
    order: tuple[str, ...]
    formula: str  # canonical
    states: dict[str, float]

    def check_site(self, site: str, where: str) -> str:
        if site not in self.amounts:
            raise SpecError(f"{where}: {site!r} is not an element of the host {self.text!r}")
        return site


@dataclass(frozen=True)
class _Generation:
    """What a form parser returns: how candidates are generated."""

    templates: tuple[FormulaTemplate, ...]
    grids: tuple[Grid, ...]
    dopants: tuple[DopantOption, ...] = ()
    dopants2: tuple[DopantOption, ...] = ()
    site: str | None = None
    site2: str | None = None


@dataclass(frozen=True)
class _Context:
    form: SpecForm
    host: _Host
    exclude: frozenset[str]
    model_elements: frozenset[str] | None

    def options(
        self, value: tuple[str, ...], where: str, exclude: frozenset[str]
    ) -> tuple[DopantOption, ...]:
        symbols = expand_dopants(value, where, exclude=exclude, model_elements=self.model_elements)
        return _valence_options(symbols, self.form.valences, self.form.valence_policy, where)


def _parse_host(value: str, decimals: int, allow_peroxide: bool) -> _Host:
    if not value.strip():
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
    return _Host(value, amounts, order, formula, dict(oxi.states))


def _parse_substitution(ctx: _Context, comp: Compensation) -> _Generation:
    """``site`` + ``dopants`` + ``fractions`` (+ ``codoping``), compiled into one template."""
    form, host = ctx.form, ctx.host
    for key in ("site", "dopants", "fractions"):
        if getattr(form, key) is None:
            raise SpecError(f"{key}: required for a substitution screen (or give a template)")
    assert form.site is not None and form.dopants is not None and form.fractions is not None
    site = host.check_site(form.site, "site")
    dopants = ctx.options(form.dopants, "dopants", ctx.exclude | {site})
    grids = [Grid("x", form.fractions.values)]
    site2: str | None = None
    dopants2: tuple[DopantOption, ...] = ()
    co = form.codoping
    if co is not None:
        site2 = host.check_site(co.site or site, "codoping.site")
        if co.dopants is None or co.fractions is None:
            raise SpecError("codoping: needs dopants and fractions")
        dopants2 = ctx.options(co.dopants, "codoping.dopants", ctx.exclude | {site2})
        grids.append(Grid("x2", co.fractions.values))
    for g, s, where in zip(grids, (site, site2), ("fractions", "codoping.fractions"), strict=False):
        assert s is not None
        for v in g.values:
            if not 0 < v <= host.amounts[s] + 1e-12:
                raise SpecError(
                    f"{where}: {v} out of range (0, {host.amounts[s]:g}] for site {s} of {host.text!r}"
                )
    if (
        comp.element is not None
        and comp.mode != CompensationMode.VARIABLE_VALENCE
        and host.states.get(comp.element, 0) == 0
    ):
        raise SpecError(
            f"compensation: {comp.element} has oxidation state 0 in the host; it cannot compensate"
        )
    text = _substitution_template(host.amounts, host.order, site, site2, comp, host.states)
    template = parse_template(text, {g.name for g in grids})
    return _Generation((template,), tuple(grids), dopants, dopants2, site, site2)


def _compile_templates(tmpl: TemplateForm, grids: list[Grid]) -> tuple[FormulaTemplate, ...]:
    names = {g.name for g in grids}
    compiled = []
    for i, t in enumerate(tmpl.formulas):
        where = "template.formula" if isinstance(tmpl.formula, str) else f"template.formula[{i}]"
        try:
            ft = parse_template(t, names)
        except TemplateError as exc:
            raise SpecError(f"{where}: {exc}") from None
        unused = names - ft.names
        if unused:
            raise SpecError(f"{where}: variable(s) {sorted(unused)} not used (they would repeat candidates)")
        compiled.append(ft)
    placeholders = {p for ft in compiled for p in ft.placeholders}
    if any(set(ft.placeholders) != placeholders for ft in compiled):
        raise SpecError("template.formula: every template must use the same placeholders ({M}, {M2})")
    return tuple(compiled)


def _parse_template_form(ctx: _Context) -> _Generation:
    """``template: {formula, variables}`` with ``dopants`` for {M} and ``codoping.dopants`` for {M2}."""
    form = ctx.form
    assert form.template is not None
    for key in ("site", "fractions"):
        if getattr(form, key) is not None:
            raise SpecError(f"{key}: not used with a template (put the grid under template.variables)")
    grids = [Grid(str(k), v.values) for k, v in form.template.variables.items()]
    templates = _compile_templates(form.template, grids)
    placeholders = {p for ft in templates for p in ft.placeholders}
    dopants: tuple[DopantOption, ...] = ()
    if "M" in placeholders:
        if form.dopants is None:
            raise SpecError("dopants: the template uses {M}; list the elements it runs over")
        dopants = ctx.options(form.dopants, "dopants", ctx.exclude)
    elif form.dopants is not None:
        raise SpecError("dopants: the template has no {M} placeholder")
    dopants2: tuple[DopantOption, ...] = ()
    co = form.codoping
    if "M2" in placeholders:
        if co is None or co.dopants is None:
            raise SpecError("codoping.dopants: the template uses {M2}; list the elements it runs over")
        if co.fractions is not None or co.site is not None:
            raise SpecError("codoping: with a template only codoping.dopants is used")
        dopants2 = ctx.options(co.dopants, "codoping.dopants", ctx.exclude)
    elif co is not None:
        raise SpecError("codoping: the template has no {M2} placeholder")
    return _Generation(templates, tuple(grids), dopants, dopants2)


def _check_decimals(gen: _Generation, kind: str, decimals: int) -> None:
    for g in gen.grids:
        for value in g.values:
            if abs(round(value, decimals) - value) > 1e-12:
                raise SpecError(
                    f"{_grid_field(kind, g.name)}: {value} has more than {decimals} decimals; candidate "
                    "formulas are written with `decimals` decimals (raise decimals or round the grid)"
                )


def _check_valence_policy(form: SpecForm, gen: _Generation, comp: Compensation) -> None:
    if form.valence_policy == "all" or any(len(v) > 1 for v in form.valences.values()):
        uses_v = any(VALENCE_NAMES[p] in t.names for t in gen.templates for p in PLACEHOLDERS)
        if not uses_v:
            raise SpecError(
                "valence_policy: several valences per dopant give the same formula here (the formula does "
                f"not depend on the valence with compensation {comp.mode}); use one valence per dopant"
            )


def _targets(form: SpecForm, family: Family) -> tuple[TargetName, ...]:
    if form.targets is None:
        return family.targets
    for t in form.targets:
        if t not in family.targets:
            raise SpecError(
                f"targets: {t.value!r} is not a target of family {family.name} ({list(family.targets)})"
            )
    return form.targets


def _reference(form: SpecForm, host_text: str) -> str:
    reference = form.reference if form.reference is not None else host_text
    try:
        parse_formula(reference)
    except CompositionError as exc:
        raise SpecError(f"reference: {reference!r}: {exc}") from None
    return reference


def _anchors(form: SpecForm, targets: tuple[TargetName, ...]) -> tuple[Anchor, ...]:
    out = []
    for i, a in enumerate(form.anchors):
        where = f"anchors[{i}]"
        target = a.target
        if target is None:
            if len(targets) > 1:
                raise SpecError(
                    f"{where}.target: required, the spec screens {', '.join(t.value for t in targets)} "
                    "(or write anchors as {target: [rows]})"
                )
            target = targets[0]
        if target not in targets:
            raise SpecError(f"{where}.target: {target.value!r} is not screened ({', '.join(targets)})")
        try:
            parse_formula(a.formula)
        except CompositionError as exc:
            raise SpecError(f"{where}.formula: {a.formula!r}: {exc}") from None
        fields = a.model_dump(exclude={"target"})
        out.append(Anchor(target=target, **fields))
    return tuple(out)


def parse_spec(
    mapping: Mapping[str, Any],
    *,
    model_elements: frozenset[str] | None = None,
    max_candidates: int | None = None,
) -> ScreeningSpec:
    """Validate a spec mapping: its shape (``SpecForm``), then its chemistry. ``model_elements`` resolves
    the dopant group ``model_elements`` (the elements the relevant models were trained on; the caller
    knows the models). ``max_candidates`` overrides the spec's cap."""
    form = SpecForm.from_mapping(mapping)
    family = FAMILIES[form.family]
    cap = max_candidates if max_candidates is not None else form.max_candidates or DEFAULT_MAX_CANDIDATES
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
        raise SpecError(f"max_candidates: needs a positive integer, got {cap!r}")
    bad_valences = [k for k in form.valences if not el.is_element(k)]
    if bad_valences:
        raise SpecError(f"valences: needs {{element: valence}}, {bad_valences[0]!r} is not an element")
    peroxide = family.allow_peroxide if form.allow_peroxide is None else form.allow_peroxide
    host = _parse_host(form.host, form.decimals, peroxide)
    for x in form.exclude:
        if not el.is_element(x):
            raise SpecError(f"exclude: unknown element {x!r}")
    if form.form == "substitution" and form.site is not None:
        host.check_site(form.site, "site")
    comp = _compensation(form.compensation, form.form, host.amounts, form.site)
    ctx = _Context(form, host, frozenset(form.exclude), model_elements)
    gen = _parse_substitution(ctx, comp) if form.form == "substitution" else _parse_template_form(ctx)
    _check_decimals(gen, form.form, form.decimals)
    _check_valence_policy(form, gen, comp)
    targets = _targets(form, family)
    try:
        ranking = parse_ranking(form.ranking, targets)
    except ValueError as exc:
        raise SpecError(f"ranking: {exc}") from None
    reference = _reference(form, host.text)
    ranking = replace(ranking, reference=reference)
    spec = ScreeningSpec(
        name=form.name,
        family=family,
        host=host.text,
        host_formula=host.formula,
        host_elements=host.order,
        host_states=tuple((s, float(host.states[s])) for s in host.order if s in host.states),
        form=form.form,
        templates=gen.templates,
        site=gen.site,
        site2=gen.site2,
        dopants=gen.dopants,
        dopants2=gen.dopants2,
        grids=gen.grids,
        compensation=comp,
        conditions=_conditions(form.conditions, family),
        targets=targets,
        ranking=ranking,
        reference=reference,
        anchors=_anchors(form, targets),
        decimals=form.decimals,
        max_candidates=cap,
        allow_peroxide=peroxide,
        phase=form.phase,
        description=form.description,
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
