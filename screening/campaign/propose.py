"""The next batch of a campaign: uncertainty-aware acquisition, constraints, and batch diversity.

``propose_batch`` reads a screening score table (``screening.schema.column(target, field)`` columns per
target, ``formula``, the candidate label columns) and picks k candidates one at a time:

1. Exclusions (each row keeps its first reason, ``Proposals.excluded``): not charge-neutral (a rejected
   row's ``reason_code``, or the project's neutrality check ``featurize.oxidation.charge_balance_batch``);
   already measured (same reduced composition, incl. polymorph, and the same values of the measured
   conditions the table carries); no prediction; out of any objective's domain unless allowed.
2. Acquisition per objective, oriented so higher is better, against the best measured value of that
   target so far (else ``reference``, else the host row's prediction, else the best predicted mean):
   EI (``screening.ranking.expected_improvement``), UCB, P(better) or the mean alone (greedy). Several
   objectives or a threshold: the weighted sum of per-objective acquisitions min-max normalised over the
   proposable rows (``screening.ranking.minmax_normalise``), times the probability of meeting each
   threshold.
3. Diversity, after each pick: kriging believer (the pick's outcome is believed to be its mean: each
   target's best-so-far moves to it, and the std of every candidate shrinks by ``sqrt(1 - rho^2)``, rho =
   ``exp(-d^2 / 2 l^2)`` its correlation with the pick at Hellinger distance d of atomic fractions: the
   posterior of a noiseless observation under a squared-exponential kernel), or local penalisation (the
   acquisition is multiplied by ``1 - rho``), or none.

Ties break by a permutation drawn from ``seed``: the same inputs and seed give the same batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from featurize.composition import Composition, CompositionError, parse_formulas
from featurize.oxidation import charge_balance_batch
from models.features import INPUT_SPECS
from models.targets import TARGETS, TargetName
from screening.campaign.types import (
    AcquisitionConfig,
    CampaignObjective,
    ExcludeCode,
    Measurement,
    Proposals,
)
from screening.ranking import expected_improvement, minmax_normalise
from screening.schema import RESULT_COLUMNS, Field, column

__all__ = [
    "acquisition_values",
    "composition_features",
    "default_length_scale",
    "measured_mask",
    "propose_batch",
]

#: Column of a score table naming the model that scored it (``screening.campaign.local.SCORED_BY``; kept
#: here as a plain name so the proposal core does not import the model code).
SCORED_BY = "scored_by"
#: Label columns copied from the scored table into the proposals (when present).
_LABEL_COLUMNS = tuple(c for c in RESULT_COLUMNS if c != "formula")
_TARGET_FIELDS = (Field.PREDICTION, Field.STD, Field.LOWER_90, Field.UPPER_90, Field.IN_DOMAIN)


def composition_features(comps: Sequence[Composition | None]) -> np.ndarray:
    """Square roots of atomic fractions over the union of elements (rows of None are zeros): the Euclidean
    distance of two rows is sqrt(2) x the Hellinger distance of their compositions, so a new dopant counts
    more than a step in the fraction of one already present."""
    elements = sorted({e for c in comps if c is not None for e in c.elements})
    index = {e: i for i, e in enumerate(elements)}
    out = np.zeros((len(comps), max(len(elements), 1)))
    for r, c in enumerate(comps):
        if c is None:
            continue
        for e, f in zip(c.elements, c.fractions, strict=True):
            out[r, index[e]] = np.sqrt(f)
    return out


def default_length_scale(features: np.ndarray, mask: np.ndarray, seed: int) -> float:
    """Twice the median nearest-neighbour distance among the ``mask`` rows (up to 2000 sampled), so a
    candidate's next fraction step is strongly correlated with it (rho ~ 0.9) and distant compositions
    are not; 1.0 when there are fewer than two distinct rows."""
    rows = np.flatnonzero(mask)
    if rows.size > 2000:
        rows = np.sort(np.random.default_rng(seed).choice(rows, 2000, replace=False))
    f = features[rows]
    if f.shape[0] < 2:
        return 1.0
    sq = np.sum(f**2, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * f @ f.T, 0.0)
    np.fill_diagonal(d2, np.inf)
    nn = np.sqrt(d2.min(axis=1))
    nn = nn[np.isfinite(nn) & (nn > 0)]
    return float(2.0 * np.median(nn)) if nn.size else 1.0


#: Condition columns that say which material was made (not how it was tested): the models' categorical
#: inputs.
MATERIAL_COLUMNS = frozenset(c for spec in INPUT_SPECS.values() for c in spec.categorical)


def _condition_equal(a: object, b: object) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return str(a) == str(b)
    try:
        fa, fb = float(a), float(b)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return bool(np.isclose(fa, fb, rtol=1e-9, atol=1e-9)) or (np.isnan(fa) and np.isnan(fb))


def measured_mask(
    frame: pd.DataFrame, comps: Sequence[Composition | None], measured: Sequence[Measurement]
) -> np.ndarray:
    """True for rows whose material was measured (any target): same reduced composition (incl. the
    polymorph prefix) and the same value of every measured material column (``MATERIAL_COLUMNS``: phase,
    structure type, working ion) that is a column of ``frame``. The measurement protocol (cycles, current,
    voltage window) does not count: a material made and measured under another protocol is not proposed
    again as if it were new (amorphous vs crystalline NaTaCl6, though, are two materials)."""
    by_key: dict[Any, list[Mapping[str, Any]]] = {}
    for m, parsed in zip(measured, parse_formulas([m.formula for m in measured]), strict=True):
        if isinstance(parsed, Composition):
            by_key.setdefault(parsed.key, []).append(m.conditions)
    out = np.zeros(len(frame), dtype=bool)
    if not by_key:
        return out
    for r, comp in enumerate(comps):
        if comp is None or comp.key not in by_key:
            continue
        for conds in by_key[comp.key]:
            shared = [k for k in conds if k in frame.columns and k in MATERIAL_COLUMNS]
            if all(_condition_equal(frame[k].iat[r], conds[k]) for k in shared):
                out[r] = True
                break
    return out


def _neutral(frame: pd.DataFrame, comps: Sequence[Composition | None], allow_peroxide: bool) -> np.ndarray:
    ok = np.array([c is not None for c in comps], dtype=bool)
    if "reason_code" in frame.columns:
        ok &= frame["reason_code"].fillna("").astype(str).to_numpy() == ""
    present = [(int(r), c) for r, c in enumerate(comps) if c is not None and ok[r]]
    if present:
        elements = sorted({e for _, c in present for e in c.elements})
        index = {e: i for i, e in enumerate(elements)}
        amounts = np.zeros((len(present), len(elements)))
        for i, (_, c) in enumerate(present):
            for e, a in zip(c.elements, c.amounts, strict=True):
                amounts[i, index[e]] = a
        _, balanced = charge_balance_batch(elements, amounts, allow_peroxide=allow_peroxide)
        ok[[r for r, _ in present]] = np.asarray(balanced, dtype=bool)
    return ok


def _numbers(frame: pd.DataFrame, name: str, default: float = np.nan) -> np.ndarray:
    if name not in frame.columns:
        return np.full(len(frame), default)
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)


def _baseline(
    o: CampaignObjective,
    measured: Sequence[Measurement],
    reference: Mapping[TargetName, float] | None,
    frame: pd.DataFrame,
    mean: np.ndarray,
    mask: np.ndarray,
) -> tuple[float, str]:
    """(best value so far in target units, where it came from)."""
    values = [m.value for m in measured if m.target is o.target]
    if values:
        best = max(values) if o.direction == "max" else min(values)
        return float(best), f"best measured ({len(values)} rows)"
    if reference is not None and o.target in reference:
        return float(reference[o.target]), "reference"
    if "is_host" in frame.columns:
        host = mean[frame["is_host"].fillna(False).astype(bool).to_numpy()]
        host = host[np.isfinite(host)]
        if host.size:
            return float(host[0]), "host prediction"
    if mask.any():
        oriented = o.sign * mean[mask]
        return float(o.sign * np.max(oriented)), "best predicted (nothing measured, no host or reference)"
    return float("nan"), "none"


def acquisition_values(
    kind: str, oriented_mean: np.ndarray, std: np.ndarray, oriented_best: float, kappa: float, xi: float
) -> np.ndarray:
    """One objective's acquisition (higher is better) from means and the best so far, both oriented so
    that higher is better: ``ei`` E[max(Y - best - xi, 0)], ``ucb`` mean + kappa std, ``p_better``
    P(Y > best), ``greedy`` the mean."""
    std = np.where(np.isfinite(std), np.maximum(std, 0.0), 0.0)
    if kind == "ei":
        return expected_improvement(oriented_mean - oriented_best - xi, std)
    if kind == "ucb":
        return oriented_mean + kappa * std
    if kind == "p_better":
        imp = oriented_mean - oriented_best
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(std > 0, imp / np.where(std > 0, std, 1.0), 0.0)
        out: np.ndarray = np.where(std > 0, norm.cdf(z), (imp > 0).astype(float))
        return out
    if kind == "greedy":
        return oriented_mean.copy()
    raise ValueError(f"acquisition kind {kind!r} (use ei, ucb, p_better or greedy)")


def _combined(
    objectives: Sequence[CampaignObjective],
    config: AcquisitionConfig,
    means: Mapping[TargetName, np.ndarray],
    stds: Mapping[TargetName, np.ndarray],
    best: Mapping[TargetName, float],
    mask: np.ndarray,
) -> tuple[np.ndarray, dict[TargetName, np.ndarray]]:
    per = {
        o.target: acquisition_values(
            config.kind,
            o.sign * means[o.target],
            stds[o.target],
            o.sign * best[o.target],
            config.kappa,
            config.xi,
        )
        for o in objectives
    }
    if len(objectives) == 1 and objectives[0].threshold is None:
        return per[objectives[0].target], per
    total = sum(o.weight for o in objectives)
    score = np.zeros(mask.shape[0])
    for o in objectives:
        score = score + o.weight / total * np.nan_to_num(minmax_normalise(per[o.target], mask))
    for o in objectives:
        if o.threshold is None:
            continue
        s = stds[o.target]
        gap = o.sign * (means[o.target] - o.threshold)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(s > 0, gap / np.where(s > 0, s, 1.0), 0.0)
        score = score * np.where(s > 0, norm.cdf(z), (gap >= 0).astype(float))
    return score, per


def _exclusions(
    frame: pd.DataFrame,
    comps: list[Composition | None],
    parse_errors: list[str],
    measured: Sequence[Measurement],
    targets: Sequence[TargetName],
    config: AcquisitionConfig,
    allow_peroxide: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(frame)
    code = np.full(n, "", dtype=object)
    why = np.full(n, "", dtype=object)

    def exclude(mask: np.ndarray, c: str, text: np.ndarray | str) -> None:
        new = mask & (code == "")
        code[new] = c
        why[new] = text[new] if isinstance(text, np.ndarray) else text

    bad_parse = np.array([bool(e) for e in parse_errors], dtype=bool)
    exclude(
        bad_parse,
        ExcludeCode.NO_PREDICTION,
        np.array([f"invalid formula: {e}" for e in parse_errors], dtype=object),
    )
    neutral = _neutral(frame, comps, allow_peroxide)
    exclude(~neutral, ExcludeCode.NOT_NEUTRAL, "not charge-neutral within the allowed oxidation states")
    exclude(measured_mask(frame, comps, measured), ExcludeCode.MEASURED, "already measured in this campaign")
    for t in targets:
        mean = _numbers(frame, column(t, Field.PREDICTION))
        err = (
            frame[column(t, Field.ERROR)].fillna("").astype(str).to_numpy()
            if column(t, Field.ERROR) in frame.columns
            else np.full(n, "")
        )
        missing = ~np.isfinite(mean)
        exclude(
            missing,
            ExcludeCode.NO_PREDICTION,
            np.array([f"no {t.value} prediction: {e or 'missing'}" for e in err], dtype=object),
        )
        if not config.allow_out_of_domain and column(t, Field.IN_DOMAIN) in frame.columns:
            ind = frame[column(t, Field.IN_DOMAIN)].fillna(False).astype(bool).to_numpy()
            reason_col = column(t, Field.DOMAIN_REASON)
            reasons = (
                frame[reason_col].fillna("").astype(str).to_numpy()
                if reason_col in frame.columns
                else np.full(n, "")
            )
            exclude(
                ~ind,
                ExcludeCode.OUT_OF_DOMAIN,
                np.array(
                    [f"{t.value} out of domain: {r or 'no reason given'}" for r in reasons], dtype=object
                ),
            )
    return code == "", code, why


def _check(scored: pd.DataFrame, objectives: Sequence[CampaignObjective], k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k: the batch size must be an integer >= 1, got {k!r}")
    if not objectives:
        raise ValueError("objectives: a campaign needs at least one objective")
    targets = [o.target for o in objectives]
    if len(set(targets)) != len(targets):
        raise ValueError("objectives: a target is listed twice")
    if all(o.weight == 0 for o in objectives):
        raise ValueError("objectives: all weights are 0")
    if "formula" not in scored.columns:
        raise ValueError("scored table has no 'formula' column")
    for t in targets:
        if column(t, Field.PREDICTION) not in scored.columns:
            raise ValueError(
                f"scored table has no {column(t, Field.PREDICTION)!r} column (was {t.value} scored?)"
            )


def propose_batch(
    scored: pd.DataFrame,
    measured: Sequence[Measurement],
    objectives: Sequence[CampaignObjective],
    config: AcquisitionConfig,
    k: int,
    *,
    seed: int,
    reference: Mapping[TargetName, float] | None = None,
    allow_peroxide: bool = False,
) -> Proposals:
    """The next ``k`` candidates of ``scored`` (fewer when fewer are proposable); see the module docstring.
    ``reference``: per target, the value to beat before anything of that target was measured (e.g. the
    host's measured value); ``allow_peroxide``: the spec's setting for the neutrality check."""
    _check(scored, objectives, k)
    frame = scored.reset_index(drop=True)
    parsed = parse_formulas(frame["formula"].astype(str).tolist())
    comps: list[Composition | None] = [p if isinstance(p, Composition) else None for p in parsed]
    parse_errors = [str(p) if isinstance(p, CompositionError) else "" for p in parsed]
    targets = [o.target for o in objectives]
    mask, code, why = _exclusions(frame, comps, parse_errors, measured, targets, config, allow_peroxide)

    means = {t: _numbers(frame, column(t, Field.PREDICTION)) for t in targets}
    stds = {t: np.nan_to_num(_numbers(frame, column(t, Field.STD), 0.0), nan=0.0) for t in targets}
    best: dict[TargetName, float] = {}
    best_from: dict[TargetName, str] = {}
    for o in objectives:
        best[o.target], best_from[o.target] = _baseline(o, measured, reference, frame, means[o.target], mask)

    features = composition_features(comps)
    scale = config.length_scale or default_length_scale(features, mask, seed)
    tiebreak = np.random.default_rng(seed).permutation(len(frame))
    penalty = np.ones(len(frame))
    first, _ = _combined(objectives, config, means, stds, best, mask)
    remaining = mask.copy()
    picks: list[tuple[int, float, dict[TargetName, float], dict[TargetName, float]]] = []
    for _ in range(k):
        if not remaining.any():
            break
        acq, _per = _combined(objectives, config, means, stds, best, remaining)
        if config.diversity == "local_penalisation":
            floor = np.nanmin(acq[remaining])
            acq = (acq - floor + 1e-12) * penalty
        acq = np.where(remaining & np.isfinite(acq), acq, -np.inf)
        top = float(np.max(acq))
        cand = np.flatnonzero(acq >= top - 1e-12 * max(1.0, abs(top)))
        j = int(cand[np.argmin(tiebreak[cand])])
        picks.append((j, top, {t: float(stds[t][j]) for t in targets}, dict(best)))
        remaining[j] = False
        if config.diversity == "none":
            continue
        d2 = np.sum((features - features[j]) ** 2, axis=1)
        rho = np.exp(-d2 / (2.0 * scale**2))
        if config.diversity == "kriging_believer":
            for o in objectives:
                stds[o.target] = stds[o.target] * np.sqrt(np.clip(1.0 - rho**2, 0.0, 1.0))
                believed = float(means[o.target][j])
                if o.sign * believed > o.sign * best[o.target]:
                    best[o.target] = believed
        else:
            penalty = penalty * (1.0 - rho)

    table = _table(frame, picks, first, objectives, config)
    excluded = pd.DataFrame(
        {
            "formula": frame["formula"].astype(str).to_numpy()[~mask],
            "code": code[~mask].astype(str),
            "reason": why[~mask].astype(str),
        }
    )
    base = "; ".join(f"{o.target.value} {o.direction} vs {best_from[o.target]}" for o in objectives)
    described = (
        f"{config.describe()}; length scale {scale:.3g} (Hellinger x sqrt 2); baselines: {base}; "
        f"{len(picks)} of {k} proposed from {int(mask.sum())} proposable of {len(frame)} candidates"
    )
    baselines = {
        o.target.value: float(_baseline(o, measured, reference, frame, means[o.target], mask)[0])
        for o in objectives
    }
    return Proposals(table=table, excluded=excluded, described=described, baselines=baselines, seed=seed)


def _reason(
    frame: pd.DataFrame,
    j: int,
    value: float,
    first: float,
    shrunk: Mapping[TargetName, float],
    best: Mapping[TargetName, float],
    objectives: Sequence[CampaignObjective],
    config: AcquisitionConfig,
) -> str:
    bits = []
    for o in objectives:
        t = o.target
        unit = TARGETS[t].unit
        mean = float(pd.to_numeric(frame[column(t, Field.PREDICTION)].iat[j], errors="coerce"))
        std = (
            float(pd.to_numeric(frame[column(t, Field.STD)].iat[j], errors="coerce"))
            if column(t, Field.STD) in frame.columns
            else float("nan")
        )
        text = (
            f"{t.value} predicted {mean:.3g} +- {std:.2g} {unit} ({o.direction}; best so far {best[t]:.3g})"
        )
        if np.isfinite(std) and std > 0 and shrunk[t] < 0.95 * std:
            text += f", std believed {shrunk[t]:.2g} after earlier picks nearby"
        bits.append(text)
    acq = f"{config.kind} {value:.3g}"
    if not np.isclose(value, first):
        acq += f" (before this batch's earlier picks: {first:.3g})"
    scored_by = f"; scored by {frame[SCORED_BY].iat[j]}" if SCORED_BY in frame.columns else ""
    return "; ".join(bits) + f"; acquisition {acq}" + scored_by


def _table(
    frame: pd.DataFrame,
    picks: Sequence[tuple[int, float, dict[TargetName, float], dict[TargetName, float]]],
    first: np.ndarray,
    objectives: Sequence[CampaignObjective],
    config: AcquisitionConfig,
) -> pd.DataFrame:
    rows = [j for j, *_ in picks]
    out = pd.DataFrame({"rank": np.arange(1, len(rows) + 1, dtype=np.int64)})
    out["formula"] = frame["formula"].astype(str).to_numpy()[rows] if rows else []
    for c in _LABEL_COLUMNS:
        if c in frame.columns:
            out[c] = frame[c].to_numpy()[rows] if rows else []
    scored_targets = [t for t in TargetName if column(t, Field.PREDICTION) in frame.columns]
    for t in scored_targets:
        for f in _TARGET_FIELDS:
            if column(t, f) in frame.columns:
                out[column(t, f)] = frame[column(t, f)].to_numpy()[rows] if rows else []
    if SCORED_BY in frame.columns:
        out[SCORED_BY] = frame[SCORED_BY].astype(str).to_numpy()[rows] if rows else []
    out["acquisition"] = np.array([v for _, v, *_ in picks], dtype=float)
    out["acquisition_first"] = first[rows] if rows else np.zeros(0)
    out["reason"] = [
        _reason(frame, j, v, float(first[j]), shrunk, best, objectives, config)
        for j, v, shrunk, best in picks
    ]
    return out
