"""Offline replay of a campaign on a pool of already-measured compositions (the proof of issue 14).

A ``ReplayPool`` is a candidate space whose values are known: one row per candidate (formula + the
predictor's condition inputs), its measured value, and the objective. ``replay`` plays one campaign on it:
the same ``n_start`` random rows (drawn from ``seed``) are revealed first, then each round a batch of ``k``
is chosen by the strategy and revealed, until a top-share row (``top_rows``) is revealed or the pool is
exhausted. Experiments count every revealed row, the starting ones included.

Strategies: ``campaign`` and ``greedy`` call ``propose_batch`` on the score table the caller's ``score``
function returns for the measurements so far (anchoring / refits are the caller's business, so both see
the same model); ``random`` draws the batch uniformly from the unrevealed rows. Pure: no IO, no models.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from featurize.composition import Composition, parse_formulas
from screening.campaign.propose import composition_features, propose_batch
from screening.campaign.types import AcquisitionConfig, CampaignObjective, Measurement

__all__ = [
    "STRATEGIES",
    "ReplayPool",
    "ReplayTrace",
    "ScoreFn",
    "batch_diversity",
    "experiments",
    "replay",
    "strategy_config",
    "summarise",
    "top_rows",
]

STRATEGIES = ("campaign", "greedy", "random")
#: Index column tying a score table's rows back to the pool.
POOL_ROW = "candidate_id"

ScoreFn = Callable[[Sequence[Measurement]], pd.DataFrame]


@dataclass(frozen=True)
class ReplayPool:
    """``frame``: formula + condition columns, one row per candidate; ``values``: the measured value of each
    row; ``objective``: the target and direction."""

    name: str
    frame: pd.DataFrame
    values: np.ndarray
    objective: CampaignObjective

    def __post_init__(self) -> None:
        if "formula" not in self.frame.columns:
            raise ValueError(f"pool {self.name}: frame has no 'formula' column")
        values = np.asarray(self.values, dtype=float)
        if values.shape != (len(self.frame),) or not np.isfinite(values).all():
            raise ValueError(f"pool {self.name}: needs one finite value per frame row")
        if len(self.frame) < 2:
            raise ValueError(f"pool {self.name}: needs at least 2 rows, got {len(self.frame)}")
        object.__setattr__(self, "frame", self.frame.reset_index(drop=True))
        object.__setattr__(self, "values", values)

    def measurement(self, row: int, round_: int) -> Measurement:
        conds = {
            c: v
            for c, v in self.frame.iloc[row].items()
            if c not in ("formula", POOL_ROW) and not (isinstance(v, float) and math.isnan(v))
        }
        return Measurement(
            formula=str(self.frame["formula"].iat[row]),
            target=self.objective.target,
            value=float(self.values[row]),
            conditions={str(k): v if isinstance(v, str) else float(v) for k, v in conds.items()},
            round=round_,
        )


def top_rows(values: np.ndarray, direction: str, share: float = 0.05) -> np.ndarray:
    """Mask of the top ``share`` of ``values`` (at least one row; ties with the last one included)."""
    n_top = max(1, math.ceil(share * len(values)))
    oriented = np.asarray(values, dtype=float) * (1.0 if direction == "max" else -1.0)
    cut = np.sort(oriented)[::-1][n_top - 1]
    out: np.ndarray = oriented >= cut
    return out


def strategy_config(strategy: str, campaign: AcquisitionConfig | None = None) -> AcquisitionConfig:
    """The acquisition of a strategy: ``campaign`` the product's default (or ``campaign``), ``greedy``
    the predicted mean with no diversity. ``random`` has none (ValueError)."""
    if strategy == "campaign":
        return campaign or AcquisitionConfig()
    if strategy == "greedy":
        base = campaign or AcquisitionConfig()
        return AcquisitionConfig(
            kind="greedy", diversity="none", allow_out_of_domain=base.allow_out_of_domain
        )
    raise ValueError(f"strategy {strategy!r} has no acquisition (use one of {', '.join(STRATEGIES)})")


def batch_diversity(comps: Sequence[Composition]) -> float:
    """Mean pairwise Hellinger distance of atomic fractions within a batch (0 for one row)."""
    if len(comps) < 2:
        return 0.0
    f = composition_features(list(comps)) / math.sqrt(2.0)
    d = np.sqrt(np.maximum(np.sum((f[:, None, :] - f[None, :, :]) ** 2, axis=2), 0.0))
    iu = np.triu_indices(len(comps), 1)
    return float(d[iu].mean())


@dataclass
class ReplayTrace:
    """One replayed campaign: revealed rows in order, the round of each, experiments to the first
    top-share row (None if never), the best value after each round, each batch's diversity, and how many
    batch slots were filled at random because the strategy proposed fewer than k (nothing proposable)."""

    strategy: str
    seed: int
    revealed: list[int] = field(default_factory=list)
    rounds: list[int] = field(default_factory=list)
    experiments_to_top: int | None = None
    best_after_round: list[float] = field(default_factory=list)
    diversity: list[float] = field(default_factory=list)
    fallback_picks: int = 0

    def best_after(self, n_rounds: int) -> float:
        """Best value after ``n_rounds`` batches (the last one reached if the replay stopped earlier)."""
        return self.best_after_round[min(n_rounds, len(self.best_after_round) - 1)]


def _propose_rows(
    pool: ReplayPool,
    scored: pd.DataFrame,
    measured: Sequence[Measurement],
    config: AcquisitionConfig,
    k: int,
    seed: int,
) -> list[int]:
    table = scored.copy()
    table[POOL_ROW] = np.arange(len(pool.frame))
    out = propose_batch(table, measured, [pool.objective], config, k, seed=seed)
    return [int(r) for r in out.table[POOL_ROW]]


def replay(
    pool: ReplayPool,
    strategy: str,
    score: ScoreFn | None,
    *,
    seed: int,
    k: int = 4,
    n_start: int = 3,
    share: float = 0.05,
    min_rounds: int = 0,
    config: AcquisitionConfig | None = None,
) -> ReplayTrace:
    """Play one campaign of ``strategy`` on ``pool`` (see the module docstring). ``score(measured)``: the
    pool's score table (row i = pool row i) given the measurements so far (unused by ``random``).
    ``min_rounds``: keep going after the first top-share row until this many batches (for best-after-N)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy {strategy!r} (use one of {', '.join(STRATEGIES)})")
    if strategy != "random" and score is None:
        raise ValueError(f"strategy {strategy!r} needs a score function")
    n = len(pool.frame)
    if not 1 <= n_start < n:
        raise ValueError(f"n_start must be in [1, {n - 1}] for pool {pool.name}, got {n_start}")
    top = top_rows(pool.values, pool.objective.direction, share)
    sign = pool.objective.sign
    comps = [c for c in parse_formulas(pool.frame["formula"].astype(str).tolist())]
    rng = np.random.default_rng(seed)
    trace = ReplayTrace(strategy=strategy, seed=seed)
    hidden = np.ones(n, dtype=bool)
    measured: list[Measurement] = []

    def reveal(rows: Sequence[int], round_: int) -> None:
        for r in rows:
            if not hidden[r]:
                raise RuntimeError(f"row {r} of pool {pool.name} revealed twice")
            hidden[r] = False
            trace.revealed.append(int(r))
            trace.rounds.append(round_)
            measured.append(pool.measurement(int(r), round_))
        if trace.experiments_to_top is None and top[list(rows)].any():
            trace.experiments_to_top = len(trace.revealed)
        trace.best_after_round.append(float(sign * np.max(sign * pool.values[trace.revealed])))

    start = rng.choice(n, size=n_start, replace=False)
    # the start rows are the same for every strategy of one seed: drawn before the strategy matters
    reveal([int(r) for r in start], 0)
    round_ = 0
    while hidden.any() and (trace.experiments_to_top is None or round_ < min_rounds):
        round_ += 1
        want = min(k, int(hidden.sum()))
        if strategy == "random":
            rows = [int(r) for r in rng.choice(np.flatnonzero(hidden), size=want, replace=False)]
        else:
            assert score is not None
            cfg = strategy_config(strategy, config)
            rows = _propose_rows(pool, score(measured), measured, cfg, want, seed * 1000 + round_)
            if len(rows) < want:  # nothing left the strategy may propose: fill at random, counted
                rest = np.setdiff1d(np.flatnonzero(hidden), rows)
                extra = rng.choice(rest, size=want - len(rows), replace=False)
                trace.fallback_picks += len(extra)
                rows = rows + [int(r) for r in extra]
        batch = [c for c in (comps[r] for r in rows) if isinstance(c, Composition)]
        trace.diversity.append(batch_diversity(batch))
        reveal(rows, round_)
    return trace


def summarise(values: Sequence[float], *, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """(mean, lo, hi): the mean and its 95% percentile-bootstrap interval over seeds."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    boots = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return float(x.mean()), float(lo), float(hi)


def experiments(traces: Sequence[ReplayTrace], pool_size: int) -> list[float]:
    """Experiments to a top-share row per trace (the pool size when never found)."""
    return [float(t.experiments_to_top if t.experiments_to_top is not None else pool_size) for t in traces]
