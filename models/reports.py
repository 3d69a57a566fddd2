"""Evaluation figures (PNG bytes) and the model card (markdown) of a training run. Pure: values in/out.

- Parity plot: out-of-fold prediction vs measured value, error bars = the 90% interval, out-of-domain
  rows drawn differently when the domain flag is known.
- Calibration plot: expected vs observed coverage of central intervals at several levels, from the
  out-of-fold predictions and their (calibrated) std under a Gaussian reading, plus the conformal 90%
  interval's own observed coverage as a separate marker.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.stats import norm

CALIBRATION_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def figure_png(fig: Figure, dpi: int = 110) -> bytes:
    """Render a figure to PNG bytes and close it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def parity_figure(oof: pd.DataFrame, *, title: str, unit: str) -> Figure:
    """Measured vs out-of-fold predicted with 90% interval error bars."""
    fig, ax = plt.subplots(figsize=(5.2, 5.0))
    y = oof["y_true"].to_numpy(float)
    pred = oof["prediction"].to_numpy(float)
    lower = oof["lower_90"].to_numpy(float)
    upper = oof["upper_90"].to_numpy(float)
    yerr = np.vstack([np.clip(pred - lower, 0, None), np.clip(upper - pred, 0, None)])
    in_domain = oof["in_domain"].to_numpy(bool) if "in_domain" in oof else np.ones(len(oof), bool)
    for mask, label, color in (
        (in_domain, "in domain", "tab:blue"),
        (~in_domain, "out of domain", "tab:red"),
    ):
        if mask.any():
            ax.errorbar(
                y[mask],
                pred[mask],
                yerr=yerr[:, mask],
                fmt="o",
                ms=3,
                alpha=0.55,
                elinewidth=0.6,
                color=color,
                label=f"{label} (n={int(mask.sum())})",
            )
    lo = float(np.nanmin([y.min(), lower.min()])) if len(y) else 0.0
    hi = float(np.nanmax([y.max(), upper.max()])) if len(y) else 1.0
    ax.plot([lo, hi], [lo, hi], color="black", lw=1)
    ax.set_xlabel(f"measured [{unit}]")
    ax.set_ylabel(f"predicted, out-of-fold [{unit}] (bars: 90% interval)")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    return fig


def calibration_table(oof: pd.DataFrame, levels: Sequence[float] = CALIBRATION_LEVELS) -> pd.DataFrame:
    """Observed coverage of the central Gaussian interval prediction +- z(level) * std at each level."""
    y = oof["y_true"].to_numpy(float)
    pred = oof["prediction"].to_numpy(float)
    std = oof["std"].to_numpy(float)
    rows = []
    for level in levels:
        z = float(norm.ppf(0.5 + level / 2))
        rows.append({"expected": level, "observed": float(np.mean(np.abs(y - pred) <= z * std))})
    return pd.DataFrame(rows)


def calibration_figure(oof: pd.DataFrame, *, title: str) -> Figure:
    table = calibration_table(oof)
    fig, ax = plt.subplots(figsize=(4.8, 4.6))
    ax.plot([0, 1], [0, 1], color="black", lw=1, label="ideal")
    ax.plot(table["expected"], table["observed"], "o-", label="mean +- z*std (Gaussian reading)")
    interval = float(np.mean((oof["y_true"] >= oof["lower_90"]) & (oof["y_true"] <= oof["upper_90"])))
    ax.plot([0.9], [interval], "s", color="tab:red", ms=8, label=f"conformal 90% interval: {interval:.2f}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("expected coverage")
    ax.set_ylabel("observed coverage (held-out groups)")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    return fig


def evaluation_pngs(oof: pd.DataFrame, *, target: str, unit: str) -> dict[str, bytes]:
    """The run's figures as PNG bytes: {"parity": ..., "calibration": ...}."""
    return {
        "parity": figure_png(parity_figure(oof, title=f"{target}: grouped-CV parity", unit=unit)),
        "calibration": figure_png(calibration_figure(oof, title=f"{target}: interval calibration")),
    }


def markdown_table(df: pd.DataFrame, floatfmt: str = ".3f") -> str:
    """A DataFrame as a GitHub markdown table (no tabulate dependency)."""
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, row in df.iterrows():
        cells = []
        for value in row:
            if isinstance(value, float | np.floating):
                cells.append("" if np.isnan(value) else format(float(value), floatfmt))
            else:
                cells.append(str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


@dataclass(frozen=True)
class ModelCard:
    """Everything the markdown card says; ``render()`` gives the text."""

    target: str
    description: str
    unit: str
    model_name: str
    feature_set: str
    hyperparameters: Mapping[str, object]
    data_summary: Mapping[str, object]
    metrics: pd.DataFrame
    domain: str
    caveats: Sequence[str]
    sections: Mapping[str, str] = field(default_factory=dict)

    def render(self) -> str:
        hp = ", ".join(f"{k}={v}" for k, v in sorted(self.hyperparameters.items())) or "defaults"
        data = "\n".join(f"- {k}: {v}" for k, v in self.data_summary.items())
        parts = [
            f"# nascreen model card: {self.target}",
            "",
            f"Predicts {self.description} [{self.unit}], with a std, a calibrated 90% interval and an "
            "applicability-domain flag per prediction.",
            "",
            "## Model",
            f"- estimator: {self.model_name}",
            f"- feature set: {self.feature_set} (computed inside the logged pipeline)",
            f"- hyperparameters: {hp}",
            "",
            "## Data",
            data,
            "",
            "## Grouped cross-validation (held-out groups) vs the dummy median baseline",
            markdown_table(self.metrics),
            "",
            "## Applicability domain",
            self.domain,
        ]
        for heading, body in self.sections.items():
            parts += ["", f"## {heading}", body]
        parts += ["", "## Caveats", *[f"- {c}" for c in self.caveats], ""]
        return "\n".join(parts)
