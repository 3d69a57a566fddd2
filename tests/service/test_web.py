"""The page's server side: `/` and its static files ship in the package, `/ui/meta` mirrors the screening
vocabulary and the loaded models (no browser needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from featurize import elements as el
from screening.spec import DOPANT_GROUPS, FAMILIES
from service.web.router import STATIC_DIR, table_position


def test_index_and_static_files_are_served(empty_client: TestClient) -> None:
    r = empty_client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    for ref in ("/static/app.js", "/static/style.css", "/static/favicon.svg"):
        assert ref in r.text
        asset = empty_client.get(ref)
        assert asset.status_code == 200 and len(asset.content) > 100
    assert empty_client.get("/static/../router.py").status_code == 404
    assert empty_client.get("/static/nope.js").status_code == 404


def test_page_loads_nothing_from_the_internet() -> None:
    for path in STATIC_DIR.iterdir():
        text = path.read_text()
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", ""), path.name
        assert "https://" not in text, path.name


def test_static_files_are_package_data() -> None:
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"service.web" = ["static/*"]' in pyproject
    assert {p.name for p in STATIC_DIR.iterdir()} >= {"index.html", "app.js", "style.css"}


def test_meta_without_models_says_what_is_missing(empty_client: TestClient) -> None:
    meta = empty_client.get("/ui/meta").json()
    assert {f["name"] for f in meta["families"]} == set(FAMILIES)
    assert meta["dopant_groups"]["4d_5d_tm"] == sorted(DOPANT_GROUPS["4d_5d_tm"], key=el.atomic_number)
    assert meta["models"] == {}
    assert set(meta["missing"]) == set(meta["targets"])
    assert meta["targets"]["capacity_retention"]["unit"] == "%"
    assert meta["api_key_required"] is False
    assert "pareto" in meta["ranking_modes"] and "na_content" in meta["compensation_modes"]


def test_meta_reports_version_and_training_size_of_loaded_models(fitted_client: TestClient) -> None:
    meta = fitted_client.get("/ui/meta").json()
    health = fitted_client.get("/health").json()
    for target, version in health["models"].items():
        info = meta["models"][target]
        assert info["version"] == version
        assert info["n_training_rows"] > 10 and 1 < info["n_training_groups"] <= info["n_training_rows"]
        assert "Na" in info["training_elements"]


def test_periodic_table_positions_are_unique_and_standard() -> None:
    positions = [table_position(z) for z in range(1, 119)]
    assert len(set(positions)) == 118
    expect = {"H": (1, 1), "He": (1, 18), "Na": (3, 1), "Cl": (3, 17), "Sc": (4, 3), "Zr": (5, 4)}
    expect |= {"Hf": (6, 4), "Bi": (6, 15), "La": (8, 3), "Lu": (8, 17), "Ac": (9, 3), "Ra": (7, 2)}
    for sym, pos in expect.items():
        assert table_position(el.atomic_number(sym)) == pos, sym
    assert table_position(104) == (7, 4) and table_position(118) == (7, 18)
    with pytest.raises(ValueError, match="119"):
        table_position(119)
