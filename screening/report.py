"""What a researcher looks at after a screen (pure: tables and matplotlib figures out, nothing written):
the counts, the top candidates, a dopant x fraction heatmap of the best score, and the Pareto front with
error bars."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from screening.schema import Field, RejectCode, column, count_by_code


@dataclass(frozen=True)
class ScreenCounts:
    """generated = rejected + predicted + failed rows (+ candidates of chunks that failed to run)."""

    generated: int
    rejected_neutrality: int
    rejected_other: int
    scored: int  # accepted candidates with a prediction for every target
    out_of_domain: int  # scored candidates outside the applicability domain of at least one target
    failed_predictions: int  # accepted candidates for which some target could not be predicted
    eligible: int  # ranked (passed the ranking filters)
    failed_chunks: int
    failed_chunk_candidates: int  # never generated: their chunks failed (a resume computes them)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def count_outcomes(
    ranked: pd.DataFrame,
    targets: Sequence[str],
    rejected_codes: Mapping[str, int],
    *,
    failed_chunks: int = 0,
    failed_chunk_candidates: int = 0,
) -> ScreenCounts:
    """Outcome counts; ``rejected_codes`` counts rejected candidates by ``RejectCode`` value."""
    by_code = count_by_code(rejected_codes)
    neutrality = by_code[RejectCode.NOT_CHARGE_BALANCED]
    rejected = sum(by_code.values())
    n = len(ranked)
    failed = np.zeros(n, dtype=bool)
    out = np.zeros(n, dtype=bool)
    for t in targets:
        err = (
            ranked.get(column(t, Field.ERROR), pd.Series([""] * n, index=ranked.index)).fillna("").astype(str)
        )
        failed |= (err != "").to_numpy()
        in_domain = ranked.get(column(t, Field.IN_DOMAIN), pd.Series([True] * n, index=ranked.index))
        out |= ~in_domain.fillna(False).astype(bool).to_numpy()
    eligible = int(ranked["eligible"].sum()) if "eligible" in ranked.columns else n
    return ScreenCounts(
        generated=rejected + n,
        rejected_neutrality=neutrality,
        rejected_other=rejected - neutrality,
        scored=int((~failed).sum()),
        out_of_domain=int((out & ~failed).sum()),
        failed_predictions=int(failed.sum()),
        eligible=eligible,
        failed_chunks=failed_chunks,
        failed_chunk_candidates=failed_chunk_candidates,
    )


def _label(row: pd.Series) -> str:
    """Dopant (and co-dopant) with valence: 'Ru4+', 'Ru4+ / Ti4+', 'host'."""

    def one(el: object, val: object) -> str:
        if not isinstance(el, str) or not el:
            return ""
        return f"{el}{val:g}+" if isinstance(val, int | float) and np.isfinite(val) else el

    first = one(row.get("dopant"), row.get("dopant_valence"))
    second = one(row.get("dopant2"), row.get("dopant2_valence"))
    if not first:
        return "host" if bool(row.get("is_host", False)) else ""
    return f"{first} / {second}" if second else first


#: The relative columns of the top table (per target with a delta): the change vs the reference with its
#: 90% interval, P(better than the reference) and, with anchors, the anchored absolute value.
TOP_RELATIVE_FIELDS = (
    Field.DELTA,
    Field.DELTA_LOWER_90,
    Field.DELTA_UPPER_90,
    Field.P_BETTER,
    Field.ANCHORED_PREDICTION,
    Field.ANCHORED_LOWER_90,
    Field.ANCHORED_UPPER_90,
)


def _has_values(frame: pd.DataFrame, col: str) -> bool:
    return col in frame and bool(np.isfinite(pd.to_numeric(frame[col], errors="coerce")).any())


def top_table(ranked: pd.DataFrame, targets: Sequence[str], n: int) -> pd.DataFrame:
    """The best ``n`` eligible candidates: rank, formula, dopant(s), fraction, the phase predicted, per
    target the prediction with std, 90% interval and domain flag, and the score. Where the screen has deltas
    vs its reference: per target the delta with its 90% interval, P(better) and the anchored values, and the
    host row (the 0 line, ``is_host``) after the top ``n`` when it is not among them."""
    best = ranked[ranked["rank"].notna()].sort_values("rank").head(n) if "rank" in ranked else ranked.head(n)
    relative = [t for t in targets if _has_values(ranked, column(t, Field.DELTA))]
    if relative and "is_host" in ranked and not best["is_host"].astype(bool).any():
        best = pd.concat([best, ranked[ranked["is_host"].astype(bool)].head(1)])
    out = pd.DataFrame(
        {
            "rank": best["rank"].astype("Int64").to_numpy()
            if "rank" in best
            else np.arange(1, len(best) + 1),
            "formula": best["formula"].to_numpy(),
            "dopant": [_label(r) for _, r in best.iterrows()],
            "fraction": best.get("fraction", pd.Series(np.nan, index=best.index)).to_numpy(),
        }
    )
    if "fraction2" in best and best["fraction2"].notna().any():
        out["fraction2"] = best["fraction2"].to_numpy()
    if "phase" in best:  # the phase the conductivity model was asked about (the spec's ``phase``)
        out["phase"] = best["phase"].to_numpy()
    for t in targets:
        for f in (Field.PREDICTION, Field.STD, Field.LOWER_90, Field.UPPER_90, Field.IN_DOMAIN):
            col = column(t, f)
            if col in best:
                out[col] = best[col].to_numpy()
    for t in relative:
        for f in TOP_RELATIVE_FIELDS:
            col = column(t, f)
            if _has_values(ranked, col):
                out[col] = best[col].to_numpy()
    if relative and "is_host" in best:
        out["is_host"] = best["is_host"].astype(bool).to_numpy()
    if "pareto_rank" in best:
        out["pareto_rank"] = best["pareto_rank"].to_numpy()
    out["score"] = best["score"].to_numpy() if "score" in best else np.nan
    return out


def best_score_grid(ranked: pd.DataFrame) -> pd.DataFrame:
    """Best score per dopant (rows, best first) and fraction (columns) over valences and co-dopants."""
    doped = ranked[ranked["dopant"].fillna("").astype(str) != ""]
    doped = doped[np.isfinite(pd.to_numeric(doped["score"], errors="coerce"))]
    if doped.empty:
        return pd.DataFrame()
    grid = doped.pivot_table(index="dopant", columns="fraction", values="score", aggfunc="max")
    return grid.loc[grid.max(axis=1).sort_values(ascending=False).index]


def heatmap_figure(ranked: pd.DataFrame, title: str, ranked_by: str = "") -> Figure:
    """Dopant x fraction heatmap of the best score (white where no candidate was eligible)."""
    grid = best_score_grid(ranked)
    fig = Figure(figsize=(max(5.0, 0.55 * max(len(grid.columns), 1) + 2.5), max(3.0, 0.32 * len(grid) + 1.5)))
    ax = fig.add_subplot()
    if grid.empty:
        ax.text(0.5, 0.5, "no eligible doped candidate", ha="center", va="center")
        ax.set_axis_off()
    else:
        values = np.ma.masked_invalid(grid.to_numpy(dtype=float))
        image = ax.imshow(values, aspect="auto", cmap="viridis")
        ax.set_xticks(range(len(grid.columns)), [f"{x:g}" for x in grid.columns], rotation=45)
        ax.set_yticks(range(len(grid)), list(grid.index))
        ax.set_xlabel("dopant fraction x")
        ax.set_ylabel("dopant")
        fig.colorbar(image, ax=ax, label="best score")
    ax.set_title(f"{title}\nbest score per dopant and fraction" + (f" ({ranked_by})" if ranked_by else ""))
    fig.tight_layout()
    return fig


def pareto_figure(
    ranked: pd.DataFrame, objectives: Sequence[str], units: Mapping[str, str], title: str
) -> Figure:
    """Two objectives: every eligible candidate (grey) and the Pareto front (with +-1 std error bars and
    labels). One objective: the top 25 candidates with their 90% intervals."""
    fig = Figure(figsize=(7.5, 5.5))
    ax = fig.add_subplot()
    eligible = ranked[ranked["eligible"].astype(bool)] if "eligible" in ranked else ranked
    if len(objectives) >= 2:
        tx, ty = objectives[0], objectives[1]
        ax.scatter(
            eligible[column(tx, Field.PREDICTION)],
            eligible[column(ty, Field.PREDICTION)],
            s=8,
            c="0.75",
            label="eligible",
        )
        front = (
            eligible[eligible["pareto_front"].astype(bool)]
            if "pareto_front" in eligible
            else eligible.iloc[0:0]
        )
        front = front.sort_values(column(tx, Field.PREDICTION))
        ax.errorbar(
            front[column(tx, Field.PREDICTION)],
            front[column(ty, Field.PREDICTION)],
            xerr=front[column(tx, Field.STD)],
            yerr=front[column(ty, Field.STD)],
            fmt="o-",
            color="C3",
            ecolor="C3",
            elinewidth=0.8,
            capsize=2,
            label="Pareto front (+-1 std)",
        )
        for _, row in front.head(15).iterrows():
            ax.annotate(
                f"{_label(row)} x={row.get('fraction', float('nan')):g}",
                (row[column(tx, Field.PREDICTION)], row[column(ty, Field.PREDICTION)]),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
        ax.set_xlabel(f"{tx} ({units.get(tx, '')})")
        ax.set_ylabel(f"{ty} ({units.get(ty, '')})")
        ax.legend(loc="best", fontsize=8)
    elif objectives:
        t = objectives[0]
        top = eligible.sort_values("rank").head(25) if "rank" in eligible else eligible.head(25)
        y = np.arange(len(top))
        pred = top[column(t, Field.PREDICTION)].to_numpy(dtype=float)
        lower = pred - top[column(t, Field.LOWER_90)].to_numpy(dtype=float)
        upper = top[column(t, Field.UPPER_90)].to_numpy(dtype=float) - pred
        ax.errorbar(pred, y, xerr=[lower, upper], fmt="o", color="C0", capsize=2, label="90% interval")
        ax.set_yticks(y, [f"{_label(r)} x={r.get('fraction', float('nan')):g}" for _, r in top.iterrows()])
        ax.invert_yaxis()
        ax.set_xlabel(f"{t} ({units.get(t, '')})")
        ax.legend(loc="best", fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    return fig
