"""The screening page in a real headless chromium (Debian's /usr/bin/chromium, driven by Playwright)
against a real `nascreen serve` subprocess on 127.0.0.1 with a trained capacity-retention champion.

Skip with ``-m "not browser"``; needs ``apt-get install chromium`` (CI does it in .ci/run)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow, pytest.mark.mlflow]

CHROMIUM = os.environ.get("NASCREEN_CHROMIUM", "/usr/bin/chromium")
LAUNCH_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
API_KEY = "web-test-key"

# Ru/Nb/Ti occur in the curated retention data; Os and Pt do not (out of the model's domain).
DOPANTS = ["Ru", "Nb", "Ti", "Os", "Pt"]
FRACTIONS = [0.05, 0.1]
P2_REQUEST: dict[str, Any] = {
    "family": "p2_layered_oxide",
    "host": "Na0.6Li0.2Mn0.8O2",
    "site": "Mn",
    "dopants": DOPANTS,
    "fractions": FRACTIONS,
    "compensation": {"mode": "variable_valence", "element": "Mn", "range": [3, 4]},
    "targets": ["capacity_retention"],
    "conditions": {"cycles": 100, "current_mA_g": 170, "voltage_low_V": 2.0, "voltage_high_V": 4.5},
    "ranking": {
        "mode": "value",
        "objectives": {"capacity_retention": {"weight": 2}},
        "in_domain_only": False,
    },
    "top_k": 1000,
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(trained_retention_store: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`nascreen serve` as a subprocess (this checkout's code), local job executor, an API key set."""
    root = tmp_path_factory.mktemp("web-project")
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]),
        "NASCREEN_API_KEY": API_KEY,
        "NASCREEN_TARGETS": "capacity_retention",
        "NASCREEN_CHUNK_SIZE": "4",
        "NASCREEN_MAX_RANK_CANDIDATES": "200",  # bigger screens answer 413: the page turns them into jobs
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    cmd = [
        sys.executable,
        "-c",
        "from service.cli import main; main()",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--tracking-uri",
        trained_retention_store.tracking_uri,
        "--project-root",
        str(root),
        "--executor",
        "local",
        "--log-level",
        "warning",
    ]
    log = (root / "server.log").open("wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"nascreen serve exited: {(root / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/health", timeout=2).json().get("ready"):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("nascreen serve was not ready in 180 s")
            time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).is_file() and shutil.which("chromium") is None:
        pytest.skip(f"no chromium at {CHROMIUM}: apt-get install chromium (CI does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_FLAGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any, server: str) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 1800})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.goto(server + "/")
    pg.wait_for_selector("body[data-ready='true']", timeout=30_000)
    yield pg
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def _fill_p2(pg: Any) -> None:
    pg.click("button[data-preset='p2']")
    pg.fill("#dopants-text", ", ".join(DOPANTS))
    pg.dispatch_event("#dopants-text", "input")
    pg.fill("#fractions", ", ".join(str(f) for f in FRACTIONS))
    pg.select_option("#mode", "value")


def test_page_runs_a_small_p2_screen_and_matches_the_api(page: Any, server: str, tmp_path: Path) -> None:
    pg = page
    # the model panel names the version and training-data size behind the target
    models_text = pg.inner_text("#models li[data-target='capacity_retention']")
    assert "model version 1" in models_text and "trained on" in models_text
    assert "no model loaded" in pg.inner_text("#models li[data-target='average_voltage']")

    _fill_p2(pg)
    # the voltage target has no model here: its box is disabled, only retention is requested
    assert pg.is_disabled("#tg-average_voltage")
    assert pg.get_attribute("#ptable button[data-el='Os']", "aria-pressed") == "true"
    sent = pg.evaluate("rankRequest()")
    assert sent == P2_REQUEST

    pg.click("#run")
    pg.wait_for_selector("#ranked tbody tr[data-rank='1']", timeout=120_000)
    pg.wait_for_selector("#pt-heatmap .cell[data-state='best']", timeout=30_000)

    api = httpx.post(f"{server}/v1/rank-dopants", json=P2_REQUEST, timeout=120).json()
    top = api["candidates"][0]
    assert top["rank"] == 1
    first = pg.locator("#ranked tbody tr[data-rank='1']")
    assert first.get_attribute("data-formula") == top["formula"]
    shown = float(first.locator("td[data-col='capacity_retention_prediction']").get_attribute("data-value"))
    assert shown == pytest.approx(top["capacity_retention_prediction"], rel=1e-9)
    n_rows = pg.locator("#ranked tbody tr").count()
    assert n_rows == len(api["candidates"])
    # the change vs the host and P(better) are columns; the host row is the 0 line
    p_shown = first.locator("td[data-col='capacity_retention_p_better']").get_attribute("data-value")
    assert float(p_shown) == pytest.approx(top["capacity_retention_p_better"], rel=1e-9)
    assert "change vs host" in pg.inner_text("#ranked thead")
    host_delta = pg.locator("#ranked tbody tr.host td[data-col='capacity_retention_delta']")
    assert float(host_delta.get_attribute("data-value")) == pytest.approx(0.0, abs=1e-9)

    # out-of-domain candidates are marked in the table and hatched (with the reason) on the table heatmap
    ood = [c for c in api["candidates"] if not c["capacity_retention_in_domain"] and not c.get("is_host")]
    assert ood, "the screen should contain an out-of-domain candidate (Os/Pt are not in the training data)"
    row = pg.locator(f"#ranked tbody tr[data-formula='{ood[0]['formula']}']")
    assert "ood-row" in (row.get_attribute("class") or "")
    assert row.locator("td[data-col='capacity_retention_in_domain']").inner_text() == "NO: out of domain"
    reason = ood[0]["capacity_retention_domain_reason"]
    assert reason and reason in row.locator("td[data-col='capacity_retention_domain_reason']").inner_text()
    ood_dopants = {c["dopant"] for c in ood}
    in_dopants = {
        c["dopant"] for c in api["candidates"] if c["capacity_retention_in_domain"] and c.get("dopant")
    }
    for d in ood_dopants - in_dopants:  # every candidate of this dopant is an extrapolation
        cell = pg.locator(f"#pt-heatmap .cell[data-el='{d}']")
        assert cell.get_attribute("data-state") == "ood"
        assert "OUT OF DOMAIN" in (cell.get_attribute("title") or "")
    for d in in_dopants:
        assert pg.get_attribute(f"#pt-heatmap .cell[data-el='{d}']", "data-state") == "best"
    assert pg.get_attribute("#pt-heatmap .cell[data-el='Fe']", "data-state") == "untried"
    assert pg.locator("#frac-heatmap td[data-dopant]").count() >= 1
    assert pg.locator("#pareto svg g.pt").count() >= 1

    # sorting by the prediction puts the lowest first; the share link re-runs the same screen
    pg.click("#ranked th button[data-key='capacity_retention_prediction']")
    values = [
        float(v)
        for v in pg.locator("#ranked tbody td[data-col='capacity_retention_prediction']").evaluate_all(
            "cells => cells.map(c => c.dataset.value).filter(v => v !== undefined)"
        )
    ]
    assert values == sorted(values)
    assert "#screen=" in pg.url

    shot = tmp_path / "web.png"
    pg.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("NASCREEN_WEB_SCREENSHOT"):  # refresh docs/img/web.png
        pg.locator("#results").screenshot(path=os.environ["NASCREEN_WEB_SCREENSHOT"])


def test_page_runs_a_job_with_the_api_key_and_shares_it(page: Any, server: str) -> None:
    pg = page
    _fill_p2(pg)
    pg.check("input[name='runmode'][value='job']")
    pg.click("#run")  # no key yet: the server refuses the job and the page says why
    pg.wait_for_function("document.querySelector('#form-error').textContent.includes('401')")
    assert "API key" in pg.inner_text("#form-error")

    pg.fill("#api-key", API_KEY)
    pg.click("#key-form button[type='submit']")
    assert pg.evaluate("sessionStorage.getItem('nascreen.apiKey')") == API_KEY
    pg.click("#run")
    pg.wait_for_function("location.search.includes('job=')", timeout=30_000)
    pg.wait_for_function(
        "document.querySelector('#status').textContent.includes('succeeded')", timeout=180_000
    )
    pg.wait_for_selector("#ranked tbody tr[data-rank='1']")
    job_id = pg.evaluate("new URLSearchParams(location.search).get('job')")
    job = httpx.get(f"{server}/v1/screening-jobs/{job_id}").json()
    assert job["status"] == "succeeded"
    assert pg.get_attribute("#ranked tbody tr[data-rank='1']", "data-formula") == job["top_k"][0]["formula"]
    assert pg.get_attribute("#dl-parquet", "href").endswith("format=parquet")

    # the shareable URL shows the same results in a fresh page
    url = pg.url
    other = pg.context.new_page()
    other.goto(url)
    other.wait_for_selector("#ranked tbody tr[data-rank='1']", timeout=60_000)
    assert (
        other.get_attribute("#ranked tbody tr[data-rank='1']", "data-formula") == job["top_k"][0]["formula"]
    )
    other.close()


def test_page_turns_a_big_screen_into_a_job_and_cancels_it(page: Any, server: str) -> None:
    pg = page
    pg.evaluate(f"sessionStorage.setItem('nascreen.apiKey', {API_KEY!r})")
    _fill_p2(pg)
    pg.fill("#dopants-text", "Ru, Ir, Nb, Ta, Mo, W, Ti, Zr, Sn, Os, Re, Pt, V, Cr, Fe, Co, Ni, Cu, Al, Mg")
    pg.dispatch_event("#dopants-text", "input")
    pg.fill("#fractions", "0.01:0.25:0.005")  # 49 fractions x 20 dopants: ~1000 candidates in chunks of 4
    pg.click("#run")  # "answer now if small": the server says 413, so the page submits a job instead
    pg.wait_for_selector("#cancel:not([hidden])", timeout=30_000)
    pg.wait_for_function("document.querySelector('#progress').value > 0", timeout=120_000)
    pg.click("#cancel")
    pg.wait_for_function(
        "document.querySelector('#form-error').textContent.includes('cancelled')", timeout=120_000
    )
    job_id = pg.evaluate("new URLSearchParams(location.search).get('job')")
    job = httpx.get(f"{server}/v1/screening-jobs/{job_id}").json()
    assert job["status"] == "cancelled"
    assert 0 < job["progress"]["done"] < job["progress"]["total"]
    pg.wait_for_selector("#cancel", state="hidden", timeout=10_000)


def test_page_predicts_a_pasted_list_with_per_row_errors(page: Any) -> None:
    pg = page
    pg.fill("#predict-input", "P2-Na0.67MnO2, 100, 20, 2.0, 4.3\nNa2XyO3, 100, 20, 2.0, 4.3\n")
    pg.click("#predict-form button[type='submit']")
    pg.wait_for_selector("#predict-table tr[data-index='1']", timeout=60_000)
    good = pg.inner_text("#predict-table tr[data-index='0'] td[data-col='capacity_retention_value']")
    assert good != "–"
    bad = pg.inner_text("#predict-table tr[data-index='1'] td[data-col='capacity_retention_error']")
    assert "Xy" in bad

    # a schema error (negative cycles) is shown on its own line; the others are named as not sent
    pg.fill("#predict-input", "P2-Na0.67MnO2, 100, 20, 2.0, 4.3\nP2-Na0.67MnO2, -5, 20, 2.0, 4.3\n")
    pg.click("#predict-form button[type='submit']")
    pg.wait_for_selector("#predict-table tr.bad", timeout=30_000)
    assert "cycles" in pg.inner_text("#predict-table tr.bad td[data-col='error']")
