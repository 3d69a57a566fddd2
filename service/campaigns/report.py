"""What ``status`` and ``history`` show of a campaign: rounds, best measured so far, predicted vs measured
per round (is the loop calibrated: the share of measured values inside the 90% interval the models gave
before the measurement), and the best-so-far curve against the number of experiments. Pure: records in,
tables and a matplotlib figure out (the edges write or send them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from models.targets import TARGETS, TargetName
from service.campaigns.store import CampaignRecord, RefitRecord, ResultRecord, RoundRecord

__all__ = ["CampaignStatus", "best_so_far_figure", "campaign_status", "experiments_table"]

NOT_PROPOSED = "not proposed"


@dataclass(frozen=True)
class CampaignStatus:
    """A campaign at a glance (see module)."""

    campaign: CampaignRecord
    rounds: list[RoundRecord]
    results: list[ResultRecord]
    refits: list[RefitRecord]
    best: dict[str, dict[str, Any]]  # target -> {value, formula, experiment, round}
    calibration: pd.DataFrame  # round, target, n, inside_90, mae
    experiments: pd.DataFrame  # one row per accepted measured row, in upload order, with best so far

    @property
    def n_rejected(self) -> int:
        return sum(not r.accepted for r in self.results)


def _direction(campaign: CampaignRecord, target: str) -> str:
    for o in campaign.objectives:
        if o.get("target") == target and o.get("direction") in ("max", "min"):
            return str(o["direction"])
    return "max" if TARGETS[TargetName(target)].higher_is_better else "min"


def experiments_table(campaign: CampaignRecord, results: Sequence[ResultRecord]) -> pd.DataFrame:
    """Accepted rows in upload order: experiment number, batch, round, formula, per target the measured
    value, the prediction beforehand with its 90% interval, and the best measured so far."""
    targets = [str(o["target"]) for o in campaign.objectives]
    rows = []
    best: dict[str, float] = {}
    for n, r in enumerate((r for r in results if r.accepted), start=1):
        row: dict[str, Any] = {
            "experiment": n,
            "batch": r.batch,
            "round": r.round if r.round is not None else pd.NA,
            "formula": r.formula,
        }
        for t in targets:
            value = r.values.get(t)
            pred = r.predicted.get(t, {})
            row[t] = value if value is not None else math.nan
            row[f"{t}_predicted"] = _num(pred.get("prediction"))
            row[f"{t}_lower_90"] = _num(pred.get("lower_90"))
            row[f"{t}_upper_90"] = _num(pred.get("upper_90"))
            if value is not None:
                better = max if _direction(campaign, t) == "max" else min
                best[t] = better(best[t], value) if t in best else value
            row[f"{t}_best_so_far"] = best.get(t, math.nan)
        rows.append(row)
    columns = ["experiment", "batch", "round", "formula"]
    for t in targets:
        columns += [t, f"{t}_predicted", f"{t}_lower_90", f"{t}_upper_90", f"{t}_best_so_far"]
    return pd.DataFrame(rows, columns=columns)


def _num(value: object) -> float:
    if value is None:
        return math.nan
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return out if math.isfinite(out) else math.nan


def _calibration(campaign: CampaignRecord, experiments: pd.DataFrame) -> pd.DataFrame:
    rows = []
    targets = [str(o["target"]) for o in campaign.objectives]
    if experiments.empty:
        return pd.DataFrame(columns=["round", "target", "n", "inside_90", "mae"])
    keys = experiments["round"].astype("object").where(experiments["round"].notna(), NOT_PROPOSED)
    for key in dict.fromkeys(keys.tolist()):
        part = experiments[keys == key]
        for t in targets:
            sel = part[[t, f"{t}_predicted", f"{t}_lower_90", f"{t}_upper_90"]].dropna()
            if sel.empty:
                continue
            inside = (sel[f"{t}_lower_90"] <= sel[t]) & (sel[t] <= sel[f"{t}_upper_90"])
            rows.append(
                {
                    "round": key,
                    "target": t,
                    "n": len(sel),
                    "inside_90": float(inside.mean()),
                    "mae": float((sel[t] - sel[f"{t}_predicted"]).abs().mean()),
                }
            )
    return pd.DataFrame(rows, columns=["round", "target", "n", "inside_90", "mae"])


def campaign_status(
    campaign: CampaignRecord,
    rounds: Sequence[RoundRecord],
    results: Sequence[ResultRecord],
    refits: Sequence[RefitRecord],
) -> CampaignStatus:
    """Everything ``status``/``history`` report, from the stored records."""
    experiments = experiments_table(campaign, results)
    best: dict[str, dict[str, Any]] = {}
    for o in campaign.objectives:
        t = str(o["target"])
        measured = experiments.dropna(subset=[t])
        if measured.empty:
            continue
        idx = measured[t].idxmax() if _direction(campaign, t) == "max" else measured[t].idxmin()
        hit = measured.loc[idx]
        best[t] = {
            "value": float(hit[t]),
            "formula": str(hit["formula"]),
            "experiment": int(hit["experiment"]),
            "round": None if pd.isna(hit["round"]) else int(hit["round"]),
            "direction": _direction(campaign, t),
        }
    return CampaignStatus(
        campaign=campaign,
        rounds=list(rounds),
        results=list(results),
        refits=list(refits),
        best=best,
        calibration=_calibration(campaign, experiments),
        experiments=experiments,
    )


def best_so_far_figure(status: CampaignStatus) -> Any:
    """Best measured so far vs experiments, one panel per objective (matplotlib, Agg backend); every
    measured value as a point coloured by the round that proposed it, batch boundaries dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = [str(o["target"]) for o in status.campaign.objectives]
    fig, axes = plt.subplots(len(targets), 1, figsize=(6.4, 3.2 * len(targets)), squeeze=False)
    exp = status.experiments
    for ax, t in zip(axes[:, 0], targets, strict=True):
        unit = TARGETS[TargetName(t)].unit
        if not exp.empty:
            proposed = exp["round"].notna()
            ax.scatter(
                exp.loc[~proposed, "experiment"], exp.loc[~proposed, t], c="grey", s=18, label=NOT_PROPOSED
            )
            for number in sorted(exp.loc[proposed, "round"].dropna().astype(int).unique()):
                sel = exp["round"].astype("Float64") == number
                ax.scatter(exp.loc[sel, "experiment"], exp.loc[sel, t], s=22, label=f"round {number}")
            ax.step(
                exp["experiment"], exp[f"{t}_best_so_far"], where="post", color="black", label="best so far"
            )
            for edge in exp.groupby("batch")["experiment"].min().iloc[1:]:
                ax.axvline(edge - 0.5, color="grey", linestyle=":", linewidth=0.8)
            ax.legend(fontsize=7, loc="best")
        ax.set_xlabel("experiments (measured rows, in upload order)")
        ax.set_ylabel(f"{t} ({unit})")
        ax.set_title(
            f"{status.campaign.name}: best {t} so far ({_direction(status.campaign, t)})", fontsize=9
        )
    fig.tight_layout()
    return fig
