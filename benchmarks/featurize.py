"""Fast NumPy feature path vs matminer, same run, one core. Not a test: it prints rates and ratios.

    python benchmarks/featurize.py [--n 20000] [--n-reference 1500] [--n-ion-reference 600] [--seed 0]

Generates N realistic sodium-battery compositions (seeded): doped P2/O3 layered oxides, halide
electrolytes, NASICONs, thiophosphates/antimonates. All are parsed once with featurize.composition.

What is timed (CPU time of this process, ``time.process_time``, so that other work on the machine does not
skew the ratio; everything runs on one thread: OMP/MKL/OpenBLAS threads are pinned to 1 before NumPy
loads, matminer ``set_n_jobs(1)``):
* parse: ``parse_formulas`` on the N strings (parse cache cleared first), reported on its own;
* fast path: ``FeatureSet.compute(compositions)`` from parsed Compositions (building the padded
  element/amount arrays is included), best of 3;
* matminer: ``featurizer.featurize(pymatgen_composition)`` per composition on the first
  --n-reference compositions (conversion to pymatgen Compositions done beforehand, not timed) with
  ``set_n_jobs(1)``; IonProperty runs with its oxidation-state guessing (``fast=False``) and, as in
  ``featurize_many(ignore_errors=True)``, a composition it refuses counts as done (NaN row);
* end to end: ``featurize_formulas`` (parse + features + per-row errors) on the N strings.

Agreement is checked on the compositions both paths computed: magpie_v1 within 1e-9 relative; for
oxidation_v1 the ionic-character columns within 1e-9 and the share of rows where matminer decides
"compound possible" and agrees is reported.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from featurize.composition import Composition, parse_cache_clear, parse_formulas  # noqa: E402
from featurize.featuresets import get_feature_set  # noqa: E402
from featurize.transformer import featurize_formulas  # noqa: E402

TM = ("Mn", "Ni", "Fe", "Co", "Ti", "Cu", "Cr", "V")
DOPANTS = ("Mg", "Zn", "Al", "Li", "Ti", "Cu", "Zr", "Sn", "Ru", "Nb", "Mo", "Ca", "K", "B", "Sb")
HALIDE_M = ("Y", "Er", "In", "Sc", "Zr", "Hf", "Ta", "Nb", "Al", "Ga", "Lu", "Sm")
NASICON_M = ("Sc", "Mg", "Zn", "Y", "Ni", "Co", "Ca", "Al", "Hf", "Ge", "Ti", "Fe")


def _amount(x: float) -> str:
    return f"{x:.3f}".rstrip("0").rstrip(".")


def _layered(rng: np.random.Generator) -> str:
    na = rng.choice([0.44, 0.5, 0.6, 0.67, 0.7, 0.75, 0.8, 0.85, 0.9, 1.0])
    n_tm = rng.integers(1, 4)
    metals = list(rng.choice(TM, size=n_tm, replace=False))
    n_dop = rng.integers(0, 4)
    dopants = [d for d in rng.choice(DOPANTS, size=n_dop, replace=False) if d not in metals]
    dop_amt = [round(float(rng.uniform(0.01, 0.1)), 2) for _ in dopants]
    rest = 1.0 - sum(dop_amt)
    split = rng.dirichlet(np.ones(len(metals)))
    tm_amt = [round(float(rest * s), 2) for s in split]
    tm_amt[-1] = round(rest - sum(tm_amt[:-1]), 2)
    if min(tm_amt) <= 0:
        tm_amt = [round(rest / len(metals), 3)] * len(metals)
    body = "".join(f"{el}{_amount(a)}" for el, a in zip(metals + dopants, tm_amt + dop_amt, strict=True))
    prefix = rng.choice(["", "P2-", "O3-", "P3-"])
    return f"{prefix}Na{_amount(na)}{body}O2"


def _halide(rng: np.random.Generator) -> str:
    m1, m2 = rng.choice(HALIDE_M, size=2, replace=False)
    x = round(float(rng.uniform(0.0, 0.5)), 2)
    halogen = rng.choice(["Cl", "Cl", "Br", "F", "I"])
    if rng.random() < 0.5:  # Na3MX6 / Na3-x M1-x M2'x X6 type
        return (
            f"Na{_amount(3 - x)}{m1}{_amount(1 - x)}{m2}{_amount(x)}{halogen}6" if x else f"Na3{m1}{halogen}6"
        )
    return f"{_amount(0.5 + x)}Na2O2-{m1}Cl4" if rng.random() < 0.3 else f"Na2{m1}{halogen}6"


def _nasicon(rng: np.random.Generator) -> str:
    x = round(float(rng.uniform(0.0, 1.0)), 2)
    m = rng.choice(NASICON_M)
    y = round(float(rng.uniform(0.0, 0.5)), 2)
    zr = _amount(2 - y)
    body = f"Zr{zr}{m}{_amount(y)}" if y else "Zr2"
    return f"Na{_amount(3 + x)}{body}Si{_amount(2 + x)}P{_amount(1 - x)}O12" if x < 1 else f"Na4{body}Si3O12"


def _sulfide(rng: np.random.Generator) -> str:
    x = round(float(rng.uniform(0.0, 0.3)), 2)
    if rng.random() < 0.5:
        return f"Na{_amount(3 - x)}PS{_amount(4 - x)}Cl{_amount(x)}" if x else "Na3PS4"
    w = round(float(rng.uniform(0.0, 0.2)), 2)
    return f"Na{_amount(3 - w)}Sb{_amount(1 - w)}W{_amount(w)}S4" if w else "Na3SbS4"


def generate(n: int, seed: int) -> list[str]:
    """N seeded formulas: 50 % layered oxides, 20 % halides, 20 % NASICONs, 10 % sulfides."""
    rng = np.random.default_rng(seed)
    makers = (_layered, _halide, _nasicon, _sulfide)
    kinds = rng.choice(len(makers), size=n, p=[0.5, 0.2, 0.2, 0.1])
    return [makers[k](rng) for k in kinds]


def timed(fn: Callable[[], object], repeat: int = 1) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.process_time()
        result = fn()
        best = min(best, time.process_time() - start)
    return best, result


def matminer_rate(featurizer: object, pmg: list, n_labels: int) -> tuple[float, np.ndarray, float, float]:
    """Total seconds, features (NaN where matminer refuses), and the seconds spent on the compositions
    matminer featurised and on those it refused; one ``featurize()`` call per composition."""
    featurize = featurizer.featurize  # type: ignore[attr-defined]
    out = np.full((len(pmg), n_labels), np.nan)
    t_done = t_refused = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, comp in enumerate(pmg):
            start = time.process_time()
            try:
                out[i] = featurize(comp)
                t_done += time.process_time() - start
            except ValueError:
                t_refused += time.process_time() - start
    return t_done + t_refused, out, t_done, t_refused


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=20000, help="compositions for the fast path")
    parser.add_argument("--n-reference", type=int, default=1500, help="compositions for matminer Magpie")
    parser.add_argument(
        "--n-ion-reference", type=int, default=600, help="compositions for matminer IonProperty"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from matminer.featurizers.composition import ElementProperty, IonProperty

    formulas = generate(args.n, args.seed)
    parse_cache_clear()
    t_parse, parsed = timed(lambda: parse_formulas(formulas))
    comps = [c for c in parsed if isinstance(c, Composition)]  # type: ignore[attr-defined]
    print(
        f"{args.n} generated formulas (seed {args.seed}), {len(set(formulas))} distinct, {len(comps)} parsed"
    )
    print(f"  e.g. {formulas[0]}, {formulas[1]}, {formulas[2]}, {formulas[3]}")
    print(f"parse                  : {len(formulas) / t_parse:>12,.0f} formulas/s")

    magpie, oxidation = get_feature_set("magpie_v1"), get_feature_set("oxidation_v1")
    magpie.compute(comps[:10])  # load the element tables outside the timing
    oxidation.compute(comps[:10])

    # --- Magpie -------------------------------------------------------------------------------------
    ep = ElementProperty.from_preset("magpie")
    ep.set_n_jobs(1)
    ref_comps = comps[: args.n_reference]
    pmg = [c.to_pymatgen() for c in ref_comps]
    ep.featurize(pmg[0])
    t_ref, x_ref, _, _ = matminer_rate(ep, pmg, 132)
    t_fast, x_fast = timed(lambda: magpie.compute(comps), repeat=3)
    assert isinstance(x_fast, np.ndarray)
    sub = x_fast[: len(ref_comps)]
    rel = np.abs(sub - x_ref) / np.maximum(np.abs(x_ref), 1e-300)
    agree = np.abs(sub - x_ref) <= 1e-9 * np.abs(x_ref) + 1e-12 * np.abs(x_ref).max(axis=0)
    r_ref, r_fast = len(ref_comps) / t_ref, len(comps) / t_fast
    print("\nmagpie_v1 (132 features) vs matminer ElementProperty.from_preset('magpie')")
    print(f"  matminer             : {r_ref:>12,.0f} compositions/s  ({len(ref_comps)} compositions)")
    print(f"  fast path            : {r_fast:>12,.0f} compositions/s  ({len(comps)} compositions)")
    print(f"  ratio                : {r_fast / r_ref:>12,.0f} x")
    print(
        f"  agreement            : {agree.mean():.6%} of {agree.size} values within 1e-9 rel; "
        f"max rel diff {np.nanmax(np.where(x_ref != 0, rel, 0)):.2e}"
    )

    # --- Oxidation vs IonProperty ---------------------------------------------------------------------
    ip = IonProperty(fast=False)
    ip.set_n_jobs(1)
    ion_comps = comps[: args.n_ion_reference]
    pmg_ion = [c.to_pymatgen() for c in ion_comps]
    t_ion, x_ion, t_decided, t_refused = matminer_rate(ip, pmg_ion, 3)
    t_ox, x_ox = timed(lambda: oxidation.compute(comps), repeat=3)
    assert isinstance(x_ox, np.ndarray)
    sub_ox = x_ox[: len(ion_comps)]
    decided = ~np.isnan(x_ion[:, 0])
    n_decided = int(decided.sum())
    ic_ok = np.abs(sub_ox[decided, 1:3] - x_ion[decided, 1:3]) <= 1e-9 * np.abs(x_ion[decided, 1:3]) + 1e-15
    cp_agree = (sub_ox[decided, 0] == x_ion[decided, 0]).mean() if n_decided else float("nan")
    r_ox = len(comps) / t_ox
    r_ion_all = len(ion_comps) / t_ion
    r_ion = n_decided / t_decided if n_decided else float("nan")
    print("\noxidation_v1 (7 features) vs matminer IonProperty(fast=False) (oxidation-state guessing)")
    print(
        f"  matminer, featurised : {r_ion:>12,.0f} compositions/s  ({n_decided} of {len(ion_comps)}: "
        "pymatgen's guessing only takes integer formulas)"
    )
    print(
        f"  matminer, all        : {r_ion_all:>12,.0f} compositions/s  (the {len(ion_comps) - n_decided} "
        f"refusals are instant ValueErrors, {t_refused:.2f} s in total, and give NaN rows)"
    )
    print(
        f"  fast path            : {r_ox:>12,.0f} compositions/s  ({len(comps)} compositions, all featurised)"
    )
    print(
        f"  ratio                : {r_ox / r_ion:>12,.0f} x  vs featurised ({r_ox / r_ion_all:,.0f} x vs all)"
    )
    print(
        f"  agreement            : ionic character {ic_ok.mean():.4%} within 1e-9 rel on the {n_decided} "
        f"rows matminer featurises; compound possible agrees on {cp_agree:.1%} of them"
    )
    balanced = x_ox[:, 0].mean()
    print(f"  charge-balanced      : {balanced:.1%} of all {len(comps)} compositions (fast path)")

    # --- End to end -----------------------------------------------------------------------------------
    parse_cache_clear()
    t_e2e, _ = timed(lambda: featurize_formulas(formulas, "magpie_v1"))
    print(f"\nend to end featurize_formulas(magpie_v1), parse included: {args.n / t_e2e:>10,.0f} formulas/s")
    t_comp, _ = timed(lambda: get_feature_set("composite_v1").compute(comps), repeat=3)
    print(f"composite_v1 (153 features) fast path: {len(comps) / t_comp:>10,.0f} compositions/s")

    goals = [
        ("magpie fast path >= 100x matminer", r_fast / r_ref >= 100),
        ("magpie fast path >= 100,000 compositions/s", r_fast >= 100_000),
        ("oxidation set >= 1,000x matminer IonProperty", r_ox / r_ion >= 1000),
        ("fast path agrees with matminer (magpie, ionic character)", bool(agree.all() and ic_ok.all())),
    ]
    print()
    for goal, met in goals:
        print(f"  [{'met' if met else 'MISSED'}] {goal}")


if __name__ == "__main__":
    main()
