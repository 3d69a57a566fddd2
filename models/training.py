"""Training per target, pure: a curated table in, a fitted model + metrics + figures + model card out.

Steps for one target:
1. ``training_frame``: the rows a regression may learn from (censored conductivity labels are excluded
   from fits and metrics), the model's input columns, labels and CV groups (``Target.group_column``).
2. Model + hyperparameter selection by grouped CV over a small, deliberate candidate list
   (``default_candidates``: a random forest, extra trees, histogram gradient boosting and the torch MLP
   ensemble, on named feature sets). Each candidate is fitted as an ``UncertainRegressor`` (grouped-CV
   out-of-fold predictions -> conformal calibration + domain threshold -> refit on all rows), so the
   selection score (out-of-fold MAE on held-out groups) and the winner's final model come from one fit.
3. The metrics table: the chosen model vs the dummy median baseline on the same folds (and, for
   conductivity, on Na rows alone), plus studies (``models.studies``): Li-helps-Na, the OBELiX official
   split, and the seed-fact sanity checks.
4. Figures (parity, calibration) and the model card (``models.reports``).

No MLflow, no files, no printing: ``models.tracking`` and the CLI do that with the result.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor

from models.data import dataset_hash, load_curated
from models.domain import domain_category_units, domain_ions, domain_polyanions
from models.estimators import MLPEnsembleRegressor, StudyOffsetRegressor
from models.evaluation import dummy_median_oof, regression_metrics
from models.features import build_pipeline, input_spec
from models.predictor import Predictor
from models.relative import (
    NEAR_HOST_DISTANCE,
    RelativeUncertainRegressor,
    delta_by_distance,
    predict_relative,
    relative_report,
)
from models.reports import ModelCard, evaluation_pngs, markdown_table
from models.studies import (
    li_helps_na,
    na_family_goals,
    na_family_study,
    obelix_benchmark,
    phase_contrast,
    seed_checks,
    seed_inputs,
)
from models.targets import Target, TargetName, get_target
from models.transfer import IonRoutedRegressor, framework_column, ion_fraction_columns, transfer_blocks
from models.uncertain import UncertainRegressor

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Candidate:
    """One model + hyperparameter setting + feature set tried during selection."""

    name: str
    feature_set: str
    regressor: Any
    clip_z: float | None = None  # clip standardised features (smooth models only; see build_pipeline)
    transfer: str = "none"  # conductivity cross-ion transfer features (models.transfer.TRANSFER_KINDS)

    def hyperparameters(self) -> dict[str, object]:
        params = self.regressor.get_params(deep=False)
        return {
            k: v for k, v in params.items() if isinstance(v, int | float | str | bool | tuple | type(None))
        }

    def pipeline(self, target: TargetName) -> Any:
        extra = transfer_blocks(self.transfer, self.feature_set) if self.transfer != "none" else []
        return build_pipeline(
            target, self.feature_set, clone(self.regressor), clip_z=self.clip_z, extra_blocks=extra
        )


def default_candidates(
    target: TargetName | str, *, quick: bool = False, n_jobs: int = 2, random_state: int = 0
) -> list[Candidate]:
    """The search space: small on purpose (a few minutes for all three targets on 2 cores).

    ``quick`` is the test-sized version (tiny forest only; retention: a tiny shrunk study-aware forest, the
    served kind)."""
    if quick and TargetName(target) is TargetName.CAPACITY_RETENTION:
        return [
            Candidate(
                "study_aware_shrunk",
                "magpie_v1",
                StudyOffsetRegressor(
                    RandomForestRegressor(
                        n_estimators=30,
                        min_samples_leaf=2,
                        max_features=0.3,
                        n_jobs=n_jobs,
                        random_state=random_state,
                    ),
                    spread="both",
                    shrink_folds=3,
                    random_state=random_state,
                ),
            )
        ]
    if quick:
        return [
            Candidate(
                "random_forest",
                "magpie_v1",
                RandomForestRegressor(
                    n_estimators=30,
                    min_samples_leaf=2,
                    max_features=0.3,
                    n_jobs=n_jobs,
                    random_state=random_state,
                ),
            )
        ]
    if TargetName(target) is TargetName.CAPACITY_RETENTION:
        return retention_candidates(n_jobs=n_jobs, random_state=random_state)
    # HistGradientBoosting is left out on purpose: its OpenMP pool stalls for minutes on this 2-core
    # machine when other processes compete for the cores (measured), and the forests cover trees.
    forest = {"min_samples_leaf": 2, "max_features": 0.3, "n_jobs": n_jobs, "random_state": random_state}
    transfer: list[Candidate] = []
    if TargetName(target) is TargetName.IONIC_CONDUCTIVITY:
        # Li-analogue transfer, measured (models.transfer): the Li rows made Na predictions worse under
        # grouped CV, so Na rows get their own forest (the Li/mixed rows keep the joint one), and the Na
        # rows with a non-oxide anion framework one of their own (the NASICON oxides pulled them the same
        # way: benchmarks/na_forest_variants.py, "route non-oxide")
        na_col, li_col = ion_fraction_columns("magpie_v1")
        routed = IonRoutedRegressor(
            ExtraTreesRegressor(n_estimators=150, **forest),
            na_col,
            li_col,
            framework_column=framework_column("magpie_v1"),
        )
        transfer.append(Candidate("extra_trees_ion_routed", "magpie_v1", routed, transfer="framework"))
    return [
        Candidate("random_forest", "magpie_v1", RandomForestRegressor(n_estimators=100, **forest)),
        Candidate("random_forest", "composite_v1", RandomForestRegressor(n_estimators=100, **forest)),
        Candidate("extra_trees", "magpie_v1", ExtraTreesRegressor(n_estimators=150, **forest)),
        # The torch ensemble is kept small (3 members, <= 60 epochs, 1 thread) so `nascreen train` stays at a
        # few minutes; with clipped inputs it is competitive (grouped-CV MAE: retention 13.39 vs 13.47 for
        # the forest, voltage 0.52 vs 0.51 V, conductivity 1.24 vs 1.07 for extra trees).
        mlp_candidate(random_state),
        *transfer,
    ]


def mlp_candidate(random_state: int = 0) -> Candidate:
    """The torch MLP ensemble candidate shared by the targets (small: 3 members, <= 60 epochs, 1 thread)."""
    return Candidate(
        "mlp_ensemble",
        "magpie_v1",
        MLPEnsembleRegressor(
            (64, 32),
            n_members=3,
            max_epochs=60,
            batch_size=256,
            learning_rate=3e-3,
            weight_decay=1e-3,
            n_iter_no_change=8,
            random_state=random_state,
            n_threads=1,  # measured: 2 torch threads are ~10x slower here (oversubscription)
        ),
        clip_z=5.0,
    )


RETENTION_SELECTION_METRICS = (
    "concordance",
    "relative_mae",
    "relative_coverage_90",
    "anchored_mae",
    "spearman_abs_err_std",
)


def retention_candidates(*, n_jobs: int = 1, random_state: int = 0) -> list[Candidate]:
    """Retention: the old champion (MLP ensemble) and a plain forest beside study-aware forests
    (``StudyOffsetRegressor``: composition + conditions separated from per-paper offsets), unshrunk and
    with the forest part shrunk on inner grouped folds + the headroom spread (the served one since v2)."""
    forest = {"min_samples_leaf": 2, "max_features": 0.3, "n_jobs": n_jobs, "random_state": random_state}
    out = [
        Candidate("random_forest", "magpie_v1", RandomForestRegressor(n_estimators=100, **forest)),
        mlp_candidate(random_state),
    ]
    # spread "both" (tree spread + residual-scale forest): Spearman(|error|, std) on held-out DOIs 0.19 vs
    # 0.08 ("trees") and 0.17 ("residual"), same mean (benchmarks/retention_study.py)
    out.append(
        Candidate(
            "study_aware_both",
            "magpie_v1",
            StudyOffsetRegressor(
                RandomForestRegressor(n_estimators=100, **forest),
                n_iter=1,
                linear_alpha=50.0,
                linear_weight=0.5,
                spread="both",
                random_state=random_state,
            ),
        )
    )
    # the same model shrunk towards a robust level on inner grouped folds (StudyOffsetRegressor
    # shrink_folds): same within-paper orderings, lower absolute MAE on held-out DOIs
    out.append(
        Candidate(
            "study_aware_shrunk",
            "magpie_v1",
            StudyOffsetRegressor(
                RandomForestRegressor(n_estimators=100, **forest),
                n_iter=1,
                linear_alpha=50.0,
                linear_weight=0.5,
                spread="both",
                shrink_folds=3,
                ceiling=100.0,
                headroom_weight=0.3,
                random_state=random_state,
            ),
        )
    )
    return out


@dataclass(frozen=True)
class TrainingConfig:
    n_splits: int = 5
    quick: bool = False
    n_jobs: int = 2
    random_state: int = 0
    max_rows: int | None = None  # subsample (tests): whole groups are kept
    studies: bool = True  # Li-helps-Na + OBELiX split (conductivity); seed checks always run if facts given
    candidates: tuple[Candidate, ...] | None = None


@dataclass
class TrainingResult:
    target: TargetName
    model: UncertainRegressor
    candidate: Candidate
    selection: pd.DataFrame  # one row per candidate: name, feature set, CV metrics, fit seconds
    metrics: pd.DataFrame  # scope x model (nascreen vs dummy_median): n, mae, rmse, r2, spearman, coverage_90
    oof: pd.DataFrame
    studies: dict[str, pd.DataFrame]
    figures: dict[str, bytes]
    model_card: str
    data_hash: str
    n_rows: int
    n_excluded: dict[str, int]
    input_example: pd.DataFrame
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def params(self) -> dict[str, object]:
        """What MLflow logs as params."""
        out: dict[str, object] = {
            "target": self.target.value,
            "model": self.candidate.name,
            "feature_set": self.candidate.feature_set,
            "clip_z": self.candidate.clip_z,
            "data_hash": self.data_hash,
            "n_rows": self.n_rows,
            **{f"excluded_{k}": v for k, v in self.n_excluded.items()},
        }
        out.update({f"hp.{k}": v for k, v in self.candidate.hyperparameters().items()})
        return out

    def flat_metrics(self) -> dict[str, float]:
        """Metrics as MLflow keys: cv_<metric> (model, all rows), dummy_<metric>, <scope>_cv_<metric>, ..."""
        flat: dict[str, float] = {}
        for _, row in self.metrics.iterrows():
            prefix = "cv" if row["model"] == "nascreen" else "dummy"
            scope = "" if row["scope"] == "all" else f"{row['scope']}_"
            for metric in ("mae", "rmse", "r2", "spearman", "coverage_90", "interval_width_90"):
                if metric in row and pd.notna(row[metric]):
                    flat[f"{scope}{prefix}_{metric}"] = float(row[metric])
        for name, table in self.studies.items():
            if "metric_key" in table.columns:
                for _, row in table.iterrows():
                    if row["metric_key"]:
                        flat[f"{name}_{row['metric_key']}"] = float(row["value"])
        flat["train_seconds"] = self.seconds
        return flat


def training_frame(
    target: TargetName | str, table: pd.DataFrame
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, pd.DataFrame, dict[str, int]]:
    """(X, y, groups, kept table rows, excluded counts). Censored labels are excluded (not regressable)."""
    tgt = get_target(target)
    excluded: dict[str, int] = {}
    kept = table
    if "censored" in kept.columns:
        censored = kept["censored"].astype(bool)
        excluded["censored"] = int(censored.sum())
        kept = kept.loc[~censored]
    finite = np.isfinite(kept[tgt.value_column].to_numpy(float))
    excluded["non_finite_label"] = int((~finite).sum())
    kept = kept.loc[finite].reset_index(drop=True)
    spec = input_spec(tgt.name)
    columns = [c for c in spec.columns if c in kept.columns]
    X = kept[columns].copy()
    y = kept[tgt.value_column].to_numpy(float)
    groups = kept[tgt.group_column].astype(str).to_numpy()
    return X, y, groups, kept, excluded


def subsample_groups(
    table: pd.DataFrame, group_column: str, max_rows: int, random_state: int
) -> pd.DataFrame:
    """Whole groups, in random order, until ``max_rows`` rows are reached (keeps grouped CV meaningful)."""
    if len(table) <= max_rows:
        return table
    rng = np.random.default_rng(random_state)
    groups = table[group_column].astype(str).unique()
    rng.shuffle(groups)
    sizes = table[group_column].astype(str).value_counts()
    chosen, total = [], 0
    for g in groups:
        if total >= max_rows:
            break
        chosen.append(g)
        total += int(sizes[g])
    return table.loc[table[group_column].astype(str).isin(chosen)].reset_index(drop=True)


def fit_uncertain(
    target: TargetName,
    candidate: Candidate,
    X: pd.DataFrame,
    y: np.ndarray,
    groups: np.ndarray,
    config: TrainingConfig,
) -> UncertainRegressor:
    # retention and voltage: the artifact also calibrates within-group differences (models.relative), so
    # delta vs a host comes with its own interval (voltage: pairs of one chemical system, measured in
    # benchmarks/voltage_relative.py: 90% coverage 0.900 vs 0.914 and 5% narrower than combining the
    # absolute intervals)
    relative = (TargetName.CAPACITY_RETENTION, TargetName.AVERAGE_VOLTAGE)
    cls = RelativeUncertainRegressor if target in relative else UncertainRegressor
    model = cls(
        candidate.pipeline(target),
        n_splits=config.n_splits,
        coverage=0.9,
        domain_ion_elements=domain_ions(target),
        domain_polyanions=domain_polyanions(target),
        domain_category_units=domain_category_units(target),
        # conductivity: intervals per chemistry class (Mondrian; measured in benchmarks/na_families.py)
        class_conformal=domain_polyanions(target),
        random_state=config.random_state,
    )
    return model.fit(X, y, groups)


def select_and_fit(
    target: TargetName,
    X: pd.DataFrame,
    y: np.ndarray,
    groups: np.ndarray,
    candidates: Sequence[Candidate],
    config: TrainingConfig,
    progress: Progress,
) -> tuple[UncertainRegressor, Candidate, pd.DataFrame]:
    """Fit every candidate as an UncertainRegressor; keep the lowest out-of-fold (held-out group) MAE."""
    rows: list[dict[str, object]] = []
    best: tuple[float, UncertainRegressor, Candidate] | None = None
    for i, candidate in enumerate(candidates, 1):
        progress(
            f"{target.value}: candidate {i}/{len(candidates)} {candidate.name} on {candidate.feature_set}"
        )
        start = time.perf_counter()
        try:
            model = fit_uncertain(target, candidate, X, y, groups, config)
        except ValueError as exc:  # e.g. a feature set that is not available: record and go on
            logger.warning("candidate %s/%s failed: %s", candidate.name, candidate.feature_set, exc)
            rows.append({"model": candidate.name, "feature_set": candidate.feature_set, "error": str(exc)})
            continue
        seconds = time.perf_counter() - start
        oof = model.oof_
        row = regression_metrics(oof["y_true"], oof["prediction"], oof["lower_90"], oof["upper_90"])
        score = row["mae"]
        if target is TargetName.CAPACITY_RETENTION:
            # retention is chosen on within-paper concordance (what ranks dopants), MAE breaking ties
            report = relative_report(oof, X)
            row.update({k: report[k] for k in RETENTION_SELECTION_METRICS})
            score = -report["concordance"] + 1e-6 * row["mae"]
        rows.append(
            {"model": candidate.name, "feature_set": candidate.feature_set, **row, "fit_seconds": seconds}
        )
        if best is None or score < best[0]:
            best = (score, model, candidate)
    if best is None:
        raise RuntimeError(f"{target.value}: every candidate failed: {rows}")
    selection = pd.DataFrame(rows)
    return best[1], best[2], selection


def metrics_table(oof: pd.DataFrame, scopes: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """Model vs dummy median on the model's own grouped folds, for all rows and each named row subset.
    The dummy of a subset learns its median from that subset's rows only (e.g. Na rows for "na_only")."""
    rows = []
    for scope, mask in {"all": np.ones(len(oof), dtype=bool), **(scopes or {})}.items():
        if not mask.any() or len(np.unique(oof["fold"].to_numpy()[mask])) < 2:
            continue
        dummy = dummy_median_oof(oof["y_true"], oof["fold"], oof["group"], train_mask=mask)
        for name, table in (("nascreen", oof), ("dummy_median", dummy)):
            metrics = regression_metrics(
                table["y_true"], table["prediction"], table["lower_90"], table["upper_90"], mask=mask
            )
            rows.append({"scope": scope, "model": name, **metrics})
    frame = pd.DataFrame(rows)
    frame["n"] = frame["n"].astype(int)
    return frame


def _with_metric_keys(families: pd.DataFrame) -> pd.DataFrame:
    """MLflow keys of the Na-family study: ``na_families_<scheme>_<family>_mae`` per row."""
    scheme = families["scheme"].map({"by source": "by_source"}).fillna("lofo")
    family = families["family"].str.lower().str.replace(r"[^a-z0-9]+", "_", regex=True)
    return families.assign(metric_key=scheme + "_" + family + "_mae", value=families["mae"])


def train_on_table(
    target: TargetName | str,
    table: pd.DataFrame,
    config: TrainingConfig | None = None,
    *,
    seed_facts: pd.DataFrame | None = None,
    progress: Progress | None = None,
) -> TrainingResult:
    """Train one target on its curated table (pure)."""
    config = config or TrainingConfig()
    say: Progress = progress or (lambda message: logger.info(message))
    tgt = get_target(target)
    start = time.perf_counter()
    data_hash = dataset_hash(table)
    if config.max_rows is not None:
        table = subsample_groups(table, tgt.group_column, config.max_rows, config.random_state)
    X, y, groups, kept, excluded = training_frame(tgt.name, table)
    say(
        f"{tgt.name.value}: {len(y)} rows, {len(set(groups))} groups ({tgt.group_column}), "
        f"excluded {excluded}"
    )
    candidates = list(
        config.candidates or default_candidates(tgt.name, quick=config.quick, n_jobs=config.n_jobs)
    )
    model, candidate, selection = select_and_fit(tgt.name, X, y, groups, candidates, config, say)
    say(f"{tgt.name.value}: chose {candidate.name} on {candidate.feature_set}")
    oof = model.oof_.reset_index(drop=True)
    scopes: dict[str, np.ndarray] = {}
    if "mobile_ion" in kept.columns:
        scopes["na_only"] = (kept["mobile_ion"] == "Na").to_numpy()
    if "working_ion" in kept.columns:
        scopes["na_only"] = (kept["working_ion"] == "Na").to_numpy()
    metrics = metrics_table(oof, scopes)
    studies: dict[str, pd.DataFrame] = {}
    if config.studies and tgt.name is TargetName.IONIC_CONDUCTIVITY:
        say(f"{tgt.name.value}: study Li-helps-Na (grouped CV on Na rows)")
        # routed regressors predict Na rows from Na rows only: the study measures the joint base forest
        base = candidate
        if isinstance(candidate.regressor, IonRoutedRegressor) and candidate.regressor.forest is not None:
            base = dataclasses.replace(candidate, regressor=candidate.regressor.forest, transfer="none")
        studies["li_helps_na"] = li_helps_na(kept, X, y, groups, base, config.n_splits, config.random_state)
        say(f"{tgt.name.value}: study OBELiX official split")
        studies["obelix"] = obelix_benchmark(table, candidate)
        say(f"{tgt.name.value}: study Na families beyond NASICON (by source, leave one family out)")
        families, family_rows = na_family_study(kept, X, y, model, candidate)
        if len(families):
            studies["na_families"] = _with_metric_keys(families)
            studies["na_family_goals"] = na_family_goals(families)
            studies["na_family_rows"] = family_rows
        studies["phase_contrast"] = phase_contrast(model)
    if seed_facts is not None:
        studies["seed_checks"] = seed_checks(tgt.name, model, seed_facts)
    if tgt.name is TargetName.CAPACITY_RETENTION:
        say(f"{tgt.name.value}: within-paper pairs, relative and anchored predictions (held-out DOIs)")
        studies["within_study"] = within_study_table(relative_report(oof, X))
        studies["delta_by_distance"] = delta_by_distance(oof, X)
        if seed_facts is not None:
            studies["seed_contrast"] = seed_contrast(model, seed_facts)
    seconds = time.perf_counter() - start
    figures = evaluation_pngs(oof.assign(in_domain=True), target=tgt.name.value, unit=tgt.unit)
    result = TrainingResult(
        target=tgt.name,
        model=model,
        candidate=candidate,
        selection=selection,
        metrics=metrics,
        oof=oof,
        studies=studies,
        figures=figures,
        model_card="",
        data_hash=data_hash,
        n_rows=len(y),
        n_excluded=excluded,
        input_example=X.head(5),
        seconds=seconds,
    )
    result.model_card = model_card(tgt, result, kept, groups)
    return result


def within_study_table(report: dict[str, float]) -> pd.DataFrame:
    """``models.relative.relative_report`` as a (measure, value, metric_key) table for the card and MLflow."""
    return pd.DataFrame(
        {"measure": list(report), "value": [float(v) for v in report.values()], "metric_key": list(report)}
    )


def seed_contrast(model: Any, seed_facts: pd.DataFrame) -> pd.DataFrame:
    """The P2 seed pair (NLMRO vs host NLMO, 200 cycles at 1C, 2.0-4.5 V): predicted delta, its interval and
    P(better) beside the measured delta (reported, never tuned to)."""
    inputs = seed_inputs(TargetName.CAPACITY_RETENTION, seed_facts)
    host = inputs.loc[inputs["formula"] == SEED_HOST]
    doped = inputs.loc[inputs["formula"] == SEED_DOPED]
    if host.empty or doped.empty:
        return pd.DataFrame()
    predictor = Predictor(TargetName.CAPACITY_RETENTION, model, "training run")
    protocol = doped.drop(columns=["material", "measured", "formula"]).iloc[0]
    conditions = {str(k): v for k, v in protocol.items()}
    rel = predict_relative(predictor, doped[["formula"]], SEED_HOST, conditions)
    row = rel.iloc[0]
    return pd.DataFrame(
        [
            {
                "candidate": SEED_DOPED,
                "reference": SEED_HOST,
                "measured_candidate": float(doped["measured"].iloc[0]),
                "measured_reference": float(host["measured"].iloc[0]),
                "measured_delta": float(doped["measured"].iloc[0] - host["measured"].iloc[0]),
                "predicted_candidate": float(row["prediction"]),
                "predicted_reference": float(row["reference_prediction"]),
                "predicted_delta": float(row["delta"]),
                "delta_lower_90": float(row["delta_lower_90"]),
                "delta_upper_90": float(row["delta_upper_90"]),
                "p_better": float(row["p_better"]),
                "metric_key": "predicted_delta",
                "value": float(row["delta"]),
            }
        ]
    )


SEED_HOST = "Na0.6Li0.2Mn0.8O2"
SEED_DOPED = "Na0.6Li0.2Mn0.7Ru0.1O2"


def train_target(
    target: TargetName | str,
    data_dir: Path,
    config: TrainingConfig | None = None,
    *,
    progress: Progress | None = None,
) -> TrainingResult:
    """Load the curated table (and ``data_dir/seed_facts.csv`` when present) and train."""
    table = load_curated(target, data_dir)
    facts_path = data_dir / "seed_facts.csv"
    facts = pd.read_csv(facts_path, keep_default_na=False) if facts_path.is_file() else None
    return train_on_table(target, table, config, seed_facts=facts, progress=progress)


def _worst_in_domain(studies: dict[str, pd.DataFrame]) -> str:
    """The worst in-domain Na row held out by source: " (worst: FORMULA, measured y, predicted p)"."""
    rows = studies.get("na_family_rows")
    if rows is None or rows.empty:
        return ""
    held = rows.loc[(rows["scheme"] == "by source") & rows["in_domain"].astype(bool)]
    if held.empty:
        return ""
    worst = held.loc[(held["prediction"] - held["y_true"]).abs().idxmax()]
    return (
        f" (worst: {worst['formula']}, measured {worst['y_true']:.2f}, predicted {worst['prediction']:.2f})"
    )


def _card_table(table: pd.DataFrame) -> pd.DataFrame:
    """A study table for the model card: the MLflow key columns dropped, except ``value`` when it is the
    figure itself (a (measure, value) table such as ``within_study``)."""
    drop = ["metric_key"] if "measure" in table.columns else ["metric_key", "value"]
    return table.drop(columns=drop, errors="ignore")


def model_card(tgt: Target, result: TrainingResult, kept: pd.DataFrame, groups: np.ndarray) -> str:
    """The model card (markdown) of a trained target: data, selection, metrics, domain, caveats, studies."""
    caveats = _card_caveats(tgt, result, kept)
    sections = {
        name: markdown_table(_card_table(table)) for name, table in result.studies.items() if len(table)
    }
    sections["Model selection (grouped CV)"] = markdown_table(result.selection)
    card = ModelCard(
        target=tgt.name.value,
        description=tgt.description,
        unit=tgt.unit,
        model_name=result.candidate.name,
        feature_set=result.candidate.feature_set,
        hyperparameters=result.candidate.hyperparameters(),
        data_summary={
            "curated table hash (models.data.dataset_hash)": result.data_hash,
            "rows used": result.n_rows,
            "rows excluded": result.n_excluded,
            f"groups ({tgt.group_column})": len(set(groups)),
            "label range": f"{kept[tgt.value_column].min():.3g} .. "
            f"{kept[tgt.value_column].max():.3g} {tgt.unit}",
        },
        metrics=result.metrics,
        domain=(
            "A prediction is in domain when every element of the formula occurs in this target's training "
            "data and its k-nearest-neighbour distance in the scaled feature space is below the threshold "
            "chosen on grouped CV (the 95th percentile of held-out-group distances); otherwise `in_domain` "
            "is false and "
            "`domain_reason` says which test failed."
            + (
                " Conductivity also asks for a training row of the query's own chemistry class (ion, anions, "
                "polyanion or not) within that threshold, and for a carrier content (mobile-ion atoms per "
                "anion atom) inside the class's training range widened by a tolerance learned on grouped CV: "
                "held-out rows outside their folds' range are admitted, by increasing distance, up to the "
                "first one more than 2.5 decades off."
                if tgt.name is TargetName.IONIC_CONDUCTIVITY
                else ""
            )
        ),
        caveats=caveats,
        sections=sections,
    )
    return card.render()


def _card_caveats(tgt: Target, result: TrainingResult, kept: pd.DataFrame) -> list[str]:
    """What a reader of the card must know before trusting a number (per target)."""
    caveats = [
        "Metrics are out-of-fold on held-out groups "
        f"({tgt.group_column}); the same folds select the model among {len(result.selection)} candidates, "
        "so the winner's numbers carry a small selection optimism.",
        "Composition-only features: polymorph, processing, microstructure and cell design are invisible "
        "unless given as inputs.",
        "Intervals are split-conformal on grouped-CV residuals: marginal coverage for new groups, "
        "not per row"
        + (
            " (per chemistry class where a class has >= 9 held-out rows, else pooled)."
            if getattr(result.model, "class_calibration_", None) is not None
            else "."
        ),
    ]
    if result.n_excluded.get("censored"):
        caveats.insert(
            0,
            f"{result.n_excluded['censored']} censored labels (upper bounds such as '<1E-10') are excluded "
            "from "
            "fitting and from every metric; the model never learned 'below detection'.",
        )
    if tgt.name is TargetName.IONIC_CONDUCTIVITY:
        caveats.extend(_conductivity_caveats(result, kept))
    if tgt.name is TargetName.AVERAGE_VOLTAGE:
        caveats.append("Labels are DFT (GGA/GGA+U) Materials Project voltages, not measurements.")
    if tgt.name is TargetName.CAPACITY_RETENTION:
        caveats.append(
            "Text-mined literature labels; retention depends on cell, electrolyte and rate in ways the "
            "inputs "
            "only partly capture (current and voltage window are often missing and imputed)."
        )
        caveats.extend(_retention_caveats(result))
    return caveats


def _retention_caveats(result: TrainingResult) -> list[str]:
    """How wide a delta vs the host is against an absolute prediction, near the host and overall (read from
    the ``within_study`` study: held-out DOIs, the served delta calibration)."""
    table = result.studies.get("within_study")
    if table is None or not len(table):
        return []
    r = dict(zip(table["measure"], table["value"], strict=True))
    if not r.get("near_host_n", 0) > 0:
        return []
    tighter = r["near_host_width_90"] < r["width_90"]
    verdict = (
        "tighter than an absolute one"
        if tighter
        else "not tighter than an absolute one: the study offset cancels, but what a dopant changes within "
        "one paper is as uncertain as a paper's level"
    )
    return [
        f"Delta vs a host on held-out papers: near-host pairs (same protocol, L1 distance of atomic "
        f"fractions "
        f"<= {NEAR_HOST_DISTANCE}; {r['near_host_n']:.0f}) MAE {r['near_host_delta_mae']:.1f} vs "
        f"{r['near_host_no_change_mae']:.1f} for 'no change', 90% coverage {r['near_host_coverage_90']:.2f}, "
        f"width {r['near_host_width_90']:.1f} (every pair {r['all_pairs_width_90']:.1f}; absolute "
        f"{r['width_90']:.1f}). Residuals of near-host pairs correlate more "
        f"({r['near_host_residual_corr']:.2f} vs {r['all_pairs_residual_corr']:.2f} over every pair); the "
        f"near-host delta interval is {verdict} (table delta_by_distance)."
    ]


def _conductivity_caveats(result: TrainingResult, kept: pd.DataFrame) -> list[str]:
    """The conductivity card's caveats: the Na families beyond NASICON, Li-helps-Na, ion routing."""
    caveats: list[str] = []
    n_beyond = int((kept.get("dataset", pd.Series(dtype=str)) == "na_non_nasicon").sum())
    caveats.append(
        f"Na electrolytes beyond NASICON (halides, oxyhalides, sulfides, selenides, hydroborates, "
        f"beta-alumina): {n_beyond} hand-curated rows, one per (formula, phase); the per-family table "
        "(na_families) scores them on held-out sources and with each family held out. `phase` "
        "(crystalline, amorphous, glass, glass-ceramic, unknown) is an input; unknown is the default "
        "and is predicted like the rows whose source gave no phase."
    )
    li = result.studies.get("li_helps_na")
    if li is not None and len(li) >= 2:
        for scope, part in li.groupby("scope", sort=False):
            if len(part) < 2:
                continue
            joint = part.iloc[1]
            verdict = "helps" if joint["mae_minus_na_only"] < 0 else "does not help"
            caveats.append(
                f"Adding the Li rows {verdict} Na predictions ({scope}) on held-out Na sources: MAE "
                f"{part.iloc[0]['mae']:.3f} (Na only) vs {joint['mae']:.3f} (Na + Li), paired "
                f"difference {joint['mae_minus_na_only']:+.3f} +- {joint['paired_se']:.3f} (SE)."
            )
    goals = result.studies.get("na_family_goals")
    if goals is not None and len(goals):
        caveats.append(_na_family_goal_caveat(goals, result.studies))
    if isinstance(result.candidate.regressor, IonRoutedRegressor):
        caveats.append(
            "Served: Na-only compositions are predicted by a forest trained on the Na rows only (those with "
            "a non-oxide anion framework, halides, oxyhalides, sulfides, hydroborates, by a forest trained "
            "on those Na rows only), Li and mixed compositions by the forest trained on all rows "
            "(models.transfer.IonRoutedRegressor)."
        )
    return caveats


def _na_family_goal_caveat(goals: pd.DataFrame, studies: dict[str, pd.DataFrame]) -> str:
    """Which goals of the Na-beyond-NASICON per-family table are met, and the worst in-domain row."""
    missed = goals.loc[~goals["met"].astype(bool)]
    if missed.empty:
        return "Na beyond NASICON, grouped CV by source: every goal of the per-family table is met."
    listed = "; ".join(f"{g} ({v:.3g})" for g, v in zip(missed["goal"], missed["value"], strict=True))
    return (
        f"Na beyond NASICON, grouped CV by source: not met: {listed}. The domain asks a Na query for a close "
        "training row of its own chemistry class (ion, anions, polyanion or not) and a carrier content (ion "
        "atoms per anion atom) inside that class's training range, widened by the tolerance learned on "
        "grouped CV; a composition model cannot "
        f"see a structure that makes one member of a class a poor conductor{_worst_in_domain(studies)}."
    )
