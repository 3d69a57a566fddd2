"""Formula parsing: nascreen's ``parse_formula`` vs pymatgen's ``Composition``, same run, one core.

    python benchmarks/parse.py [--n 100000] [--n-reference 20000] [--seed 0]

Generates N DISTINCT realistic formulas (seeded): doped P2/O3 layered oxides, halides, NASICONs with
fractional amounts written to 2-4 decimals, thiophosphates, and a share of bracketed and prefixed ones
("Na[Li1/3Ru2/3]O2", "P2-Na0.67Mn0.6Ni0.3Fe0.1O2"), as a featurise/predict file holds them. Timed (CPU time
of this process, ``time.process_time``, so other work on the machine skews the ratio less):

* ours, per call: ``parse_formula`` on every string once, the parse cache cleared first (every call is a
  miss);
* ours, batch: ``parse_formulas(texts)`` (what featurize/predict call; it pauses the garbage collector for
  the batch), cache cleared first; and the same followed by reading every ``formula`` (the fast path
  derives the formula text on first use; pymatgen's figure always includes it);
* pymatgen: ``Composition(text).get_reduced_formula_and_factor()`` on the first --n-reference strings it
  can read (no phase prefix, no a/b amounts; pymatgen's parse + reduction: what ``formula`` equals).

Then checks that the reduction is identical: for every generated formula pymatgen can read, our
``formula`` equals pymatgen's reduced formula of the same amounts (rounded to 8 decimals). Prints both
rates and the ratio. Under load from other processes the absolute rates drop; the ratio stays meaningful.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

# Run as a script, this folder comes first on sys.path and benchmarks/featurize.py would shadow the
# featurize package: put the project root first instead.
ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]

from pymatgen.core import Composition as PmgComposition  # noqa: E402

from featurize.composition import parse_cache_clear, parse_formula, parse_formulas  # noqa: E402

TM = ("Mn", "Ni", "Fe", "Co", "Ti", "Cu", "Cr", "V")
DOPANTS = ("Mg", "Zn", "Al", "Li", "Ti", "Cu", "Zr", "Sn", "Ru", "Nb", "Mo", "Ca", "K", "B", "Sb")
HALIDE_M = ("Y", "Er", "In", "Sc", "Zr", "Hf", "Ta", "Nb", "Al", "Ga", "Lu", "Sm")


def _amount(x: float, decimals: int) -> str:
    return f"{max(x, 10.0**-decimals):.{decimals}f}".rstrip("0").rstrip(".")


def _formula(rng: np.random.Generator) -> str:
    kind = rng.random()
    d = int(rng.integers(2, 5))
    if kind < 0.6:  # layered oxide, optionally doped and prefixed
        metals = list(rng.choice(TM, size=int(rng.integers(1, 4)), replace=False))
        metals += [str(m) for m in rng.choice(DOPANTS, size=int(rng.integers(0, 3)), replace=False)]
        shares = rng.dirichlet(np.ones(len(metals)))
        body = "".join(m + _amount(s, d) for m, s in zip(metals, shares, strict=True))
        text = f"Na{_amount(rng.uniform(0.4, 1.0), d)}{body}O2"
        return ("P2-" if rng.random() < 0.1 else "") + text
    if kind < 0.75:  # halide
        m1, m2 = rng.choice(HALIDE_M, size=2, replace=False)
        y = rng.uniform(0.01, 0.6)
        return f"Na{_amount(3 - y, d)}{m1}{_amount(1 - y, d)}{m2}{_amount(y, d)}Cl6"
    if kind < 0.9:  # NASICON
        x = rng.uniform(0, 3)
        return f"Na{_amount(1 + x, d)}Zr2Si{_amount(x, d)}P{_amount(3 - x, d)}O12"
    if kind < 0.95:  # bracketed
        a = int(rng.integers(1, 9))
        return (
            f"Na[Li{a}/{a + 3}Ru{3}/{a + 3}]O2"
            if rng.random() < 0.5
            else f"Na3V2(PO4)2F{_amount(rng.uniform(1, 3), d)}"
        )
    return f"Na{_amount(rng.uniform(2.5, 3.5), d)}P{_amount(rng.uniform(0.5, 1), d)}S4"


def _corpus(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    out: dict[str, None] = {}
    while len(out) < n:
        out[_formula(rng)] = None
    return list(out)


def _pmg_reduced(text: str) -> tuple[str, float] | None:
    try:
        return PmgComposition(text).get_reduced_formula_and_factor()
    except (ValueError, KeyError):
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--n-reference", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    warnings.filterwarnings("ignore", message="No Pauling electronegativity")
    texts = _corpus(args.n, args.seed)
    print(f"{len(texts):,} distinct formulas, e.g. {texts[:3]}")

    parse_cache_clear()
    t0 = time.process_time()
    comps = [parse_formula(t) for t in texts]
    ours = len(texts) / (time.process_time() - t0)
    del comps
    parse_cache_clear()
    t0 = time.process_time()
    batch = parse_formulas(texts)
    ours_batch = len(texts) / (time.process_time() - t0)
    del batch
    parse_cache_clear()
    t0 = time.process_time()
    comps = parse_formulas(texts)
    for c in comps:
        c.formula  # noqa: B018 (derive the formula text: part of what is timed)
    ours_formula = len(texts) / (time.process_time() - t0)

    ref = [t for t in texts if "-" not in t and "/" not in t][: args.n_reference]  # what pymatgen reads
    t0 = time.process_time()
    for t in ref:
        PmgComposition(t).get_reduced_formula_and_factor()
    theirs = len(ref) / (time.process_time() - t0)

    # identical reduction: pymatgen parses the text itself where it can (no prefix, no a/b amounts) and
    # reduces its amounts rounded to our 8 decimals; elsewhere it reduces our amounts
    mismatches = []
    for text, comp in zip(texts, comps, strict=True):
        if "-" in text or "/" in text:
            amounts = comp.as_dict()
        else:
            amounts = {
                str(e): round(a, 8)
                for e, a in PmgComposition(text.replace("[", "(").replace("]", ")")).items()
            }
        expected = PmgComposition(amounts).reduced_formula
        if comp.formula != expected:
            mismatches.append((text, comp.formula, expected))
    print(f"pymatgen:            {theirs:9,.0f} formulas/s (Composition(t).get_reduced_formula_and_factor())")
    print("ours (cache cleared, every formula distinct):")
    for name, rate in [
        ("parse_formula", ours),
        ("parse_formulas", ours_batch),
        ("parse_formulas+formula", ours_formula),
    ]:
        verdict = "met" if rate >= 100_000 else "MISSED"
        print(f"  {name:22} {rate:9,.0f} formulas/s  {rate / theirs:5.1f}x pymatgen [{verdict}: >= 100k/s]")
    print(f"reduction identical to pymatgen: {len(texts) - len(mismatches):,} / {len(texts):,}")
    for m in mismatches[:10]:
        print("  MISMATCH", m)


if __name__ == "__main__":
    main()
