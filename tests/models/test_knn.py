"""The shared neighbour search (models.knn) gives sklearn's ``kneighbors`` mean distances, and the domain
built on it gives the same flags and reasons as with sklearn's search per neighbour set, on the curated
conductivity data (the target whose domain has all three sets: all rows, per ion, per class)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestRegressor
from sklearn.neighbors import NearestNeighbors

from featurize.composition import Composition, parse_formulas
from models.domain import ApplicabilityDomain, chemistry_classes, domain_ions, domain_polyanions
from models.features import build_pipeline
from models.knn import BLOCK_ROWS, SubsetKnn
from models.targets import TargetName

DATA = Path(__file__).resolve().parents[2] / "data" / "curated" / "ionic_conductivity.csv"


def _mean_knn(nn: NearestNeighbors, Q: np.ndarray) -> np.ndarray:
    dist, _ = nn.kneighbors(Q)
    return np.asarray(dist.mean(axis=1))


def test_shared_search_matches_kneighbors_on_every_subset() -> None:
    rng = np.random.default_rng(0)
    R = rng.normal(size=(300, 12))
    rows = {"a": np.arange(0, 300, 3), "b": np.arange(50, 120), "tiny": np.array([7, 9])}
    full = NearestNeighbors(n_neighbors=5).fit(R)
    subsets = {key: NearestNeighbors(n_neighbors=min(5, len(i))).fit(R[i]) for key, i in rows.items()}
    knn = SubsetKnn.from_neighbours(full, subsets)
    assert knn is not None
    # more queries than one block, and queries that coincide with reference rows (the worst rounding)
    Q = np.vstack([rng.normal(size=(BLOCK_ROWS + 17, 12)), R[:20], 3.0 + rng.normal(size=(5, 12))])
    got_full, got = knn.mean_distances(Q)
    np.testing.assert_allclose(got_full, _mean_knn(full, Q), rtol=1e-12, atol=1e-6)
    for key, nn in subsets.items():
        np.testing.assert_allclose(got[key], _mean_knn(nn, Q), rtol=1e-12, atol=1e-6)
    # a subset searched for some queries only: those get the same values, the others NaN
    mask = np.zeros(len(Q), dtype=bool)
    mask[::7] = True
    _, some = knn.mean_distances(Q, {"b": mask})
    np.testing.assert_allclose(some["b"][mask], got["b"][mask], rtol=1e-12, atol=0)
    assert np.isnan(some["b"][~mask]).all()
    np.testing.assert_allclose(some["a"], got["a"], rtol=1e-12, atol=0)
    # named_only: the named subsets alone, with the very values of the full search
    _, named = knn.mean_distances(Q, {"b": mask, "tiny": np.ones(len(Q), dtype=bool)}, named_only=True)
    assert set(named) == {"b", "tiny"}
    np.testing.assert_array_equal(named["b"], some["b"])
    np.testing.assert_array_equal(named["tiny"], got["tiny"])
    far = slice(0, BLOCK_ROWS)  # random queries: no cancellation, agreement to rounding
    np.testing.assert_allclose(got_full[far], _mean_knn(full, Q[far]), rtol=1e-11, atol=0)


def test_not_shared_for_a_non_euclidean_search_or_foreign_rows() -> None:
    rng = np.random.default_rng(1)
    R = rng.normal(size=(40, 3))
    full = NearestNeighbors(n_neighbors=3).fit(R)
    assert SubsetKnn.from_neighbours(NearestNeighbors(n_neighbors=3, metric="manhattan").fit(R), {}) is None
    foreign = NearestNeighbors(n_neighbors=3).fit(R[:10] + 1e-9)  # not rows of the full set
    assert SubsetKnn.from_neighbours(full, {"x": foreign}) is None


@pytest.fixture(scope="module")
def conductivity_domain() -> tuple[ApplicabilityDomain, object, list[str]]:
    """A domain fitted as UncertainRegressor fits it, on the curated conductivity rows' real features."""
    data = pd.read_csv(DATA)
    target = TargetName.IONIC_CONDUCTIVITY
    pipe = build_pipeline(target, "magpie_v1", RandomForestRegressor(n_estimators=2, random_state=0))
    features = pipe[:-1]
    X = data[["formula"]]
    Z = features.fit_transform(X, data.iloc[:, 1])
    comps = [c for c in parse_formulas(list(X["formula"])) if isinstance(c, Composition)]
    assert len(comps) == len(X)
    ions = domain_ions(target)
    classes = chemistry_classes(comps, ions, domain_polyanions(target))
    heldout = np.quantile(np.linalg.norm(Z - Z.mean(axis=0), axis=1), np.linspace(0.05, 0.6, 50))
    domain = ApplicabilityDomain(k=5, quantile=0.95).fit(
        Z, training_elements=frozenset().union(*(c.elements for c in comps)), heldout_distances=heldout,
        training_classes=classes, ion_elements=ions, class_support=True,
    )  # fmt: skip
    novel = ["Na3Zr2Si2PO12", "Na3Zr1.9Hf0.1Si2PO12", "Na2ZrCl6", "Na3PS4", "NaAl11O17", "Li3InCl6",
             "Na3SbS4", "Na4Zr2Si3O12", "NaCl", "Na3YCl6", "K3PO4", "Na2Ti3O7"]  # fmt: skip
    return domain, features, list(X["formula"]) + novel


def test_domain_flags_and_reasons_equal_the_sklearn_search(conductivity_domain, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("models.knn.MAX_SHARED_QUERIES", 10**6)  # every row through the shared search
    domain, features, formulas = conductivity_domain
    target = TargetName.IONIC_CONDUCTIVITY
    Z = features.transform(pd.DataFrame({"formula": formulas}))
    Z[-1, 0] = np.nan  # a row whose features are not finite
    comps = parse_formulas(formulas)
    sets = [frozenset(c.elements) for c in comps]
    classes = chemistry_classes(comps, domain_ions(target), domain_polyanions(target))
    shared = domain.share_neighbour_search(True).assess(Z, sets, classes)
    reference = domain.share_neighbour_search(False).assess(Z, sets, classes)
    domain.share_neighbour_search(True)
    np.testing.assert_array_equal(shared[0], reference[0])
    assert shared[1] == reference[1]
    np.testing.assert_allclose(shared[2], reference[2], rtol=1e-9, atol=1e-6, equal_nan=True)
    assert shared[0].any() and not shared[0].all()  # both outcomes are exercised
    assert any("no close compound of its class" in r for r in shared[1])
    # the per-set distances the reasons are built from agree too
    dist, ion_dist, class_dist = domain._shared_distances(Z, classes)
    np.testing.assert_allclose(dist, domain.distances(Z), rtol=1e-9, atol=1e-6, equal_nan=True)
    # an ion's distances are computed only where a reason reads them: nowhere with class support
    rows = domain._ion_rows(classes)
    assert rows and not any(mask.any() for mask in rows.values())
    for ion, values in domain.ion_distances(Z, rows).items():
        np.testing.assert_allclose(ion_dist[ion], values, rtol=1e-9, atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(
        class_dist, domain.class_distances(Z, classes), rtol=1e-9, atol=1e-6, equal_nan=True
    )


def test_same_ion_rule_searches_only_the_rows_holding_the_ion_and_answers_as_with_all_rows(
    conductivity_domain, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """Without class support (the cathode targets' rule), a row's same-ion reason reads the distances of
    the ions its class holds: computed for those rows only, the flags and reasons are those computed
    with every ion's distance for every row (the way before), on either search."""
    import copy

    domain, features, formulas = conductivity_domain
    domain = copy.deepcopy(domain)
    domain.pair_neighbours_ = None  # the same-ion rule instead of class support
    target = TargetName.IONIC_CONDUCTIVITY
    Z = features.transform(pd.DataFrame({"formula": formulas}))
    comps = parse_formulas(formulas)
    sets = [frozenset(c.elements) for c in comps]
    classes = chemistry_classes(comps, domain_ions(target), domain_polyanions(target))
    rows = domain._ion_rows(classes)
    assert rows["Na"].any() and not rows["Na"].all() and rows["Li"].any()
    assert all(rows[ion][i] == any(p[0] == ion for p in cls) for ion in rows for i, cls in enumerate(classes))
    every = {ion: np.ones(len(classes), dtype=bool) for ion in rows}  # the way before: all rows
    for shared in (True, False):
        domain.share_neighbour_search(shared)
        monkeypatch.setattr("models.knn.MAX_SHARED_QUERIES", 10**6 if shared else 64)
        got = domain.assess(Z, sets, classes)
        with monkeypatch.context() as m:
            m.setattr(ApplicabilityDomain, "_ion_rows", lambda self, classes: every)
            want = domain.assess(Z, sets, classes)
        np.testing.assert_array_equal(got[0], want[0])
        assert got[1] == want[1]
        assert any("no close" in r and "compound in the training data" in r for r in got[1])


def test_a_pickled_domain_round_trips_without_the_shared_search(conductivity_domain) -> None:  # type: ignore[no-untyped-def]
    import pickle

    domain, features, formulas = conductivity_domain
    Z = features.transform(pd.DataFrame({"formula": formulas[:30]}))
    comps = parse_formulas(formulas[:30])
    sets = [frozenset(c.elements) for c in comps]
    before = domain.assess(Z, sets)  # builds the shared search
    restored = pickle.loads(pickle.dumps(domain))
    assert not any("knn" in name.lower() for name in vars(restored))  # nothing new in the artifact
    after = restored.assess(Z, sets)
    np.testing.assert_array_equal(before[0], after[0])
    assert before[1] == after[1]
    np.testing.assert_array_equal(before[2], after[2])


def test_a_large_batch_goes_to_the_sklearn_search(conductivity_domain) -> None:  # type: ignore[no-untyped-def]
    from models.knn import MAX_SHARED_QUERIES

    domain, features, formulas = conductivity_domain
    Z = features.transform(pd.DataFrame({"formula": formulas[: MAX_SHARED_QUERIES + 1]}))
    assert domain._shared_distances(Z, None) is None
    assert domain._shared_distances(Z[:MAX_SHARED_QUERIES], None) is not None
