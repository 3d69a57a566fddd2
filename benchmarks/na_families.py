"""The Na beyond-NASICON per-family table of the conductivity champion, without the candidate search.

Trains only the served candidate (``extra_trees_ion_routed``) on the curated conductivity table with the
same grouped CV and studies as ``nascreen train --target ionic_conductivity`` (no MLflow, nothing written
unless ``--out``), then prints, per held-out scheme (grouped CV by source; leave one family out): MAE vs the
dummy, 90% coverage, in-domain share and worst in-domain error per family; the in-domain rows more than
2.5 decades off; the domain reasons of the halides; the seed oxychlorides and Na2HfCl6; the served
model's phase contrast (NaTaCl6, Na3PS4) and the OBELiX official split. Each held-out fold's domain takes
its distance threshold and carrier-content tolerance from a grouped CV inside its training rows (~1.5-2.5 min
in all on 2 shared cores).

    PYTHONPATH=. nice -n 10 python -P benchmarks/na_families.py [--out DIR] [--data-dir DIR] [--seeds 0 1 2]

With 6-22 rows per family, one draw of the shuffled grouped folds moves a family's MAE by up to ~0.6 decades
(a changed set of sources re-draws them all). ``--seeds`` repeats the whole study for each fold seed (which
also seeds the forests), prints the full report for the first and then, per scheme and family, the mean,
spread and range over the seeds and in how many draws each goal is met: a goal is judged on that, not on
one draw.
"""

from __future__ import annotations

import argparse
import time
from math import expm1
from pathlib import Path

import pandas as pd

from models.data import load_curated
from models.targets import TargetName
from models.training import TrainingConfig, TrainingResult, default_candidates, train_on_table

ROOT = Path(__file__).resolve().parents[1]
CHAMPION = "extra_trees_ion_routed"


def study(table: pd.DataFrame, seed: int) -> TrainingResult:
    """The served candidate trained with fold and forest seed ``seed``, with the conductivity studies."""
    tgt = TargetName.IONIC_CONDUCTIVITY
    candidates = tuple(c for c in default_candidates(tgt, random_state=seed) if c.name == CHAMPION)
    return train_on_table(tgt, table, TrainingConfig(candidates=candidates, random_state=seed))


def over_seeds(tables: list[pd.DataFrame], seeds: list[int]) -> pd.DataFrame:
    """Per scheme and family: MAE mean / sd / range over the fold seeds, and the draws meeting each goal."""
    both = pd.concat([t.assign(seed=s) for t, s in zip(tables, seeds, strict=True)], ignore_index=True)
    both["mae_goal_met"] = (both["mae"] <= 1.0) & (both["mae"] < both["dummy_mae"])
    both["worst_goal_met"] = ~(both["worst_in_domain_error"] > 2.5)
    g = both.groupby(["scheme", "family"], sort=False)
    out = g.agg(
        n=("n", "first"),
        mae_mean=("mae", "mean"),
        mae_sd=("mae", "std"),
        mae_min=("mae", "min"),
        mae_max=("mae", "max"),
        dummy_mean=("dummy_mae", "mean"),
        coverage_mean=("coverage_90", "mean"),
        in_domain_mean=("in_domain_share", "mean"),
        worst_max=("worst_in_domain_error", "max"),
        mae_goal_draws=("mae_goal_met", "sum"),
        worst_goal_draws=("worst_goal_met", "sum"),
    )
    return out.reset_index().assign(draws=len(seeds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="write na_families.csv / na_family_rows.csv")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data", help="data directory (curated/)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="fold and forest seeds")
    args = parser.parse_args()
    table = load_curated(TargetName.IONIC_CONDUCTIVITY, args.data_dir)
    start = time.perf_counter()
    result = study(table, args.seeds[0])
    families = result.studies["na_families"].drop(columns=["metric_key", "value", "goal_applies"])
    rows = result.studies["na_family_rows"]
    pd.set_option("display.width", 200)
    pd.set_option("display.max_colwidth", 120)
    print(f"trained in {time.perf_counter() - start:.0f} s; data hash {result.data_hash}")
    tolerance = float(getattr(result.model.domain_, "content_tolerance_", 0.0))
    print(f"served carrier-content tolerance: log {tolerance:.3f} (ranges widened {expm1(tolerance):.1%})")
    print(result.metrics.to_string(index=False))
    print("OBELiX official split:")
    print(result.studies["obelix"].round(3).to_string(index=False))
    print(families.round(3).to_string(index=False))
    print(result.studies["na_family_goals"].drop(columns=["metric_key"]).to_string(index=False))
    err = (rows["prediction"] - rows["y_true"]).abs()
    cols = ["scheme", "formula", "phase", "structure_family", "y_true", "prediction", "lower_90", "upper_90"]
    print("in-domain rows > 2.5 decades off:")
    print(rows.loc[rows["in_domain"].astype(bool) & (err > 2.5), cols].round(2).to_string(index=False))
    print("seed oxychlorides and Na2HfCl6:")
    seeds = (rows["structure_family"] == "Oxyhalide") | (rows["formula"] == "Na2HfCl6")
    print(rows.loc[seeds, [*cols, "in_domain"]].round(2).to_string(index=False))
    print("served model, phase contrast:")
    print(result.studies["phase_contrast"].round(2).to_string(index=False))
    print("halides, grouped CV by source:")
    hal = rows.loc[(rows["scheme"] == "by source") & (rows["structure_family"] == "Halide")]
    print(hal[[*cols[1:], "in_domain", "domain_reason"]].round(2).to_string(index=False))
    tables = [families] + [study(table, s).studies["na_families"] for s in args.seeds[1:]]
    spread = over_seeds(tables, args.seeds)
    if len(args.seeds) > 1:
        print(f"over {len(args.seeds)} fold seeds {args.seeds} ({time.perf_counter() - start:.0f} s in all):")
        print(spread.round(3).to_string(index=False))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        families.to_csv(args.out / "na_families.csv", index=False)
        rows.to_csv(args.out / "na_family_rows.csv", index=False)
        spread.to_csv(args.out / "na_families_over_seeds.csv", index=False)


if __name__ == "__main__":
    main()
