"""Closed-loop campaigns end to end, with the components a user runs: quick champion models trained on the
shipped curated data in a temporary MLflow store, the real `nascreen campaign ...` CLI, and a real
`nascreen serve` process on 127.0.0.1 (stopped and started again to prove the campaign survives).

The "lab" is the champion model's own prediction plus a fixed offset of +0.4 log10(S/cm) (a lab whose
samples conduct better than the literature's): measured values a real lab could report, whose offset the
campaign must learn. One registered store per module: campaign refits add versions to it, so it is not
the session store other tests count versions in.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

from service.cli import _register, app

pytestmark = [pytest.mark.mlflow, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
NASICON = ROOT / "examples" / "specs" / "nasicon_zr_site.yaml"
P2 = ROOT / "examples" / "specs" / "p2_na0.6li0.2mn0.8o2_dopants.yaml"
LAB_OFFSET = 0.4
KEY = "campaign-test-key"


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Quick conductivity and retention champions in a store of this module's own."""
    from models import tracking
    from models.champion import train_log_register
    from models.training import TrainingConfig

    root = tmp_path_factory.mktemp("campaign-mlstore")
    uri = tracking.default_tracking_uri(root)
    config = TrainingConfig(quick=True, n_splits=3)
    for name in ("ionic_conductivity", "capacity_retention"):
        train_log_register(name, ROOT / "data", config, tracking_uri=uri, with_tables=False)
    return uri


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    if not any(g.name == "campaign" for g in app.registered_groups):
        _register()
    return CliRunner(env={"COLUMNS": "240"})


def _cli(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(app, ["campaign", *args], catch_exceptions=False, terminal_width=240)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())  # what was printed, whatever the line wrapping


def _lab(formulas: list[str], uri: str) -> list[float]:
    """What the test lab measures: the champion's prediction + LAB_OFFSET."""
    from models.predictor import load_predictors
    from models.targets import TargetName

    predictor = load_predictors([TargetName.IONIC_CONDUCTIVITY], uri)[TargetName.IONIC_CONDUCTIVITY]
    answers = predictor.predict_frame(pd.DataFrame({"formula": formulas}))
    return [float(v) + LAB_OFFSET for v in answers["prediction"]]


def test_cli_campaign_new_propose_add_results_propose_status_history(
    runner: CliRunner, tracking_uri: str, tmp_path: Path
) -> None:
    common = ["--store", str(tmp_path / "campaigns.db")]
    uri = ["--tracking-uri", tracking_uri]
    out = _cli(runner, "new", "nasicon-cli", "--spec", str(NASICON), "--seed", "3", *common, *uri)
    assert "campaign nasicon-cli" in out and "ionic_conductivity" in out

    first = tmp_path / "round1.csv"
    out = _cli(runner, "propose", "nasicon-cli", "-k", "4", "-o", str(first), *common, *uri)
    assert "round 1 of nasicon-cli" in out
    batch1 = pd.read_csv(first)
    assert len(batch1) == 4 and batch1["formula"].is_unique
    assert {"formula", "ionic_conductivity_prediction", "ionic_conductivity_std", "reason"} <= set(batch1)

    results = tmp_path / "results.csv"
    measured = _lab(batch1["formula"].tolist(), tracking_uri)
    rows = pd.DataFrame({"formula": batch1["formula"], "ionic_conductivity": measured})
    bad = pd.DataFrame({"formula": ["Na3Zr2XyPO12"], "ionic_conductivity": [-3.0]})
    pd.concat([rows, bad]).to_csv(results, index=False)
    out = _cli(runner, "add-results", "nasicon-cli", str(results), *common, *uri)
    assert "4 rows taken, 1 refused" in out
    assert "unknown element Xy" in out

    second = tmp_path / "round2.csv"
    _cli(runner, "propose", "nasicon-cli", "-k", "4", "-o", str(second), *common, *uri)
    batch2 = pd.read_csv(second)
    assert len(batch2) == 4
    assert not set(batch2["formula"]) & set(batch1["formula"]), "a measured candidate was proposed again"

    # the second batch measured: 8 rows >= MIN_REFIT_ROWS, so the champion's pipeline is refitted on the
    # curated data + these rows and registered as campaign-nasicon-cli; 8 rows >= MIN_LOCAL_ROWS too, so the
    # next round is scored by the champion + the local GP on the lab's residuals (the refit has seen them)
    results2 = tmp_path / "results2.csv"
    measured2 = _lab(batch2["formula"].tolist(), tracking_uri)
    rows2 = pd.DataFrame({"formula": batch2["formula"], "ionic_conductivity": measured2})
    rows2.to_csv(results2, index=False)
    out = _cli(runner, "add-results", "nasicon-cli", str(results2), *common, *uri)
    assert "4 rows taken, 0 refused" in out
    refit = re.search(r"refit ionic_conductivity: version (\d+) \(alias campaign-nasicon-cli", out)
    assert refit is not None, out
    third = tmp_path / "round3.csv"
    out = _cli(runner, "propose", "nasicon-cli", "-k", "2", "-o", str(third), *common, *uri)
    assert f"ionic_conductivity v{refit.group(1)}," not in out, "round 3 scored with the refit, not the GP"
    batch3 = pd.read_csv(third)
    assert all("local GP on 8 lab residuals" in r for r in batch3["reason"]), batch3["reason"].tolist()
    assert not set(batch3["formula"]) & (set(batch1["formula"]) | set(batch2["formula"]))
    # before the GP (round 2, 4 rows) the reason names the lab offset
    assert all("lab offset" in r and "local GP from 5" in r for r in batch2["reason"]), batch2[
        "reason"
    ].tolist()
    measured = measured + measured2

    plot = tmp_path / "best.png"
    out = _cli(runner, "status", "nasicon-cli", "--plot", str(plot), *common)
    assert "best ionic_conductivity so far (max)" in out
    assert f"{max(measured):.4g}"[:4] in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    history = tmp_path / "history.csv"
    out = _cli(runner, "history", "nasicon-cli", "-o", str(history), *common)
    assert "refused" in out and "Xy" in out
    table = pd.read_csv(history)
    assert table["formula"].tolist() == batch1["formula"].tolist() + batch2["formula"].tolist()
    assert table["round"].tolist() == [1] * 4 + [2] * 4
    # every measured row carries what round 1 predicted for it, and its 90% interval
    assert table["ionic_conductivity_predicted"].notna().all()
    assert (table["ionic_conductivity_lower_90"] <= table["ionic_conductivity_upper_90"]).all()
    assert table["ionic_conductivity_best_so_far"].iloc[-1] == pytest.approx(max(measured))

    listing = _cli(runner, "list", *common)
    assert "nasicon-cli" in listing


def test_cli_p2_campaign_on_retention_with_the_seed_host(
    runner: CliRunner, tracking_uri: str, tmp_path: Path
) -> None:
    """The P2 walk-through of the README: retention only (the voltage model is not needed)."""
    common = ["--store", str(tmp_path / "campaigns.db")]
    uri = ["--tracking-uri", tracking_uri]
    _cli(runner, "new", "p2", "--spec", str(P2), "--objective", "capacity_retention:max", *common, *uri)
    first = tmp_path / "r1.csv"
    _cli(runner, "propose", "p2", "-k", "3", "-o", str(first), *common, *uri)
    batch1 = pd.read_csv(first)
    assert len(batch1) == 3
    results = ROOT / "examples" / "campaign_results_p2.csv"
    out = _cli(runner, "add-results", "p2", str(results), *common, *uri)
    assert "2 rows taken, 0 refused" in out
    assert "column 'note' is not used" in out
    second = tmp_path / "r2.csv"
    out = _cli(runner, "propose", "p2", "-k", "3", "-o", str(second), *common, *uri)
    assert "from 2 measured rows" in out
    assert len(pd.read_csv(second)) == 3
    out = _cli(runner, "status", "p2", "--plot", str(tmp_path / "p2.png"), *common)
    assert "best capacity_retention so far (max): 81.2 (Na0.6Li0.2Mn0.7Ru0.1O2" in out


def test_cli_refuses_bad_input_with_one_line(runner: CliRunner, tracking_uri: str, tmp_path: Path) -> None:
    common = ["--store", str(tmp_path / "campaigns.db")]
    uri = ["--tracking-uri", tracking_uri]
    result = runner.invoke(app, ["campaign", "propose", "nope", *common, *uri], terminal_width=200)
    assert result.exit_code == 2 and "no campaign 'nope'" in result.output
    result = runner.invoke(
        app, ["campaign", "new", "Bad Name", "--spec", str(NASICON), *common, *uri], terminal_width=200
    )
    assert result.exit_code == 2 and "campaign name" in result.output
    result = runner.invoke(
        app,
        ["campaign", "new", "x", "--spec", str(NASICON), "--objective", "capacity_retention", *common, *uri],
        terminal_width=200,
    )
    assert result.exit_code == 2 and "not scored for this family" in result.output


# --------------------------------------------------------------------------------------- real server
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`nascreen serve` as users start it (one worker), in a subprocess on a free loopback port."""

    def __init__(self, root: Path, uri: str) -> None:
        self.root, self.uri = root, uri
        self.proc: subprocess.Popen[bytes] | None = None
        self.base = ""

    def start(self) -> str:
        port = _free_port()
        env = {
            **os.environ,
            "NASCREEN_TARGETS": "ionic_conductivity",
            "NASCREEN_JOB_EXECUTOR": "local",
            "NASCREEN_API_KEY": KEY,
            "RAY_USAGE_STATS_ENABLED": "0",
        }
        cmd = [
            sys.executable, "-c", "from service.cli import main; main()", "serve", "--workers", "1",
            "--host", "127.0.0.1", "--port", str(port), "--project-root", str(self.root),
            "--tracking-uri", self.uri, "--log-level", "warning",
        ]  # fmt: skip
        log = (self.root / "server.log").open("ab")
        self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        with httpx.Client(base_url=self.base, timeout=10) as client:
            while True:
                assert self.proc.poll() is None, (self.root / "server.log").read_text()
                try:
                    if client.get("/health").json()["ready"]:
                        return self.base
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the server did not start in 180 s"
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
        self.proc = None


@pytest.fixture
def server(tmp_path: Path, tracking_uri: str) -> Iterator[Server]:
    srv = Server(tmp_path, tracking_uri)
    try:
        yield srv
    finally:
        srv.stop()


SPEC: dict[str, Any] = {
    "name": "server-nasicon",
    "family": "nasicon",
    "host": "Na3Zr2Si2PO12",
    "site": "Zr",
    "dopants": ["Hf", "Ti", "Sn", "Nb", "Sc", "Y", "Mg", "Zn", "Al", "In"],
    "fractions": [0.05, 0.1, 0.15, 0.2, 0.3],
    "compensation": "na_content",
}
W = {"X-API-Key": KEY}


def test_real_server_create_propose_add_results_propose_then_restart(
    server: Server, tracking_uri: str
) -> None:
    base = server.start()
    with httpx.Client(base_url=base, timeout=300) as client:
        body = {"name": "nasicon-srv", "spec": SPEC, "seed": 11}
        assert client.post("/v1/campaigns", json=body).status_code == 401
        r = client.post("/v1/campaigns", json=body, headers=W)
        assert r.status_code == 201, r.text
        campaign = r.json()
        cid = campaign["id"]
        assert campaign["objectives"][0]["target"] == "ionic_conductivity"
        assert campaign["reference"] == "Na3Zr2Si2PO12" and len(campaign["spec_sha256"]) == 64
        assert client.post("/v1/campaigns", json=body, headers=W).status_code == 409
        assert client.get("/v1/campaigns/no-such-campaign").status_code == 404
        assert client.post("/v1/campaigns/no-such-campaign/proposals", json={}, headers=W).status_code == 404

        r = client.post(f"/v1/campaigns/{cid}/proposals", json={"k": 4}, headers=W)
        assert r.status_code == 201, r.text
        round1 = r.json()
        first = [p["formula"] for p in round1["proposals"]]
        assert round1["number"] == 1 and len(first) == 4 and len(set(first)) == 4
        assert round1["model_versions"]["ionic_conductivity"] and len(round1["spec_hash"]) == 64
        for p in round1["proposals"]:
            assert p["reason"] and p["ionic_conductivity_std"] > 0

        measured = _lab(first, tracking_uri)
        rows = [{"formula": f, "ionic_conductivity": v} for f, v in zip(first, measured, strict=True)]
        rows.append({"formula": "Na3Zr2XyPO12", "ionic_conductivity": -3.0})
        rows.append({"formula": first[0], "ionic_conductivity": 99.0})  # beyond any conductivity
        r = client.post(f"/v1/campaigns/{cid}/results", json={"rows": rows}, headers=W)
        assert r.status_code == 200, r.text
        added = r.json()
        assert (added["n_accepted"], added["n_refused"]) == (4, 2)
        refused = [x for x in added["rows"] if not x["accepted"]]
        assert [x["row"] for x in refused] == [5, 6]
        assert "Xy" in refused[0]["error"]
        assert all(x["round"] == 1 for x in added["rows"][:4])
        # non-finite numbers are refused by the schema, naming the field
        raw = b'{"rows": [{"formula": "Na3Zr2Si2PO12", "ionic_conductivity": NaN}]}'
        r = client.post(
            f"/v1/campaigns/{cid}/results", content=raw, headers={**W, "Content-Type": "application/json"}
        )
        assert r.status_code == 422 and "ionic_conductivity" in r.text

        r = client.post(f"/v1/campaigns/{cid}/proposals", json={"k": 4}, headers=W)
        assert r.status_code == 201, r.text
        round2 = r.json()
        second = [p["formula"] for p in round2["proposals"]]
        assert round2["number"] == 2 and round2["n_measured"] == 4
        assert second != first, "the second batch did not change after the results"
        assert not set(second) & set(first), "a measured candidate was proposed again"

        history = client.get(f"/v1/campaigns/{cid}/history").json()
        assert [r["number"] for r in history["rounds"]] == [1, 2]
        assert len(history["results"]) == 6
        assert history["campaign"]["best"]["ionic_conductivity"]["value"] == pytest.approx(max(measured))
        (cal,) = [c for c in history["calibration"] if c["round"] == 1]
        assert cal["n"] == 4 and 0 <= cal["inside_90"] <= 1
        refits = added["refits"]
        models_before = client.get("/v1/models").json()["models"]

    server.stop()
    base = server.start()
    with httpx.Client(base_url=base, timeout=300) as client:
        after = client.get(f"/v1/campaigns/{cid}")
        assert after.status_code == 200
        assert (after.json()["n_rounds"], after.json()["n_measured"]) == (2, 4)
        again = client.get("/v1/campaigns/nasicon-srv/history").json()
        assert again["rounds"] == history["rounds"] and again["results"] == history["results"]
        assert [c["name"] for c in client.get("/v1/campaigns").json()["campaigns"]] == ["nasicon-srv"]
        r = client.post(f"/v1/campaigns/{cid}/proposals", json={"k": 2}, headers=W)
        assert r.status_code == 201, r.text
        round3 = r.json()
        assert round3["number"] == 3 and not {p["formula"] for p in round3["proposals"]} & set(first)
        models_after = client.get("/v1/models").json()["models"]
    champion = {
        m["version"]
        for m in models_after
        if m["target"] == "ionic_conductivity" and "champion" in m["aliases"]
    }
    assert champion == {
        m["version"]
        for m in models_before
        if m["target"] == "ionic_conductivity" and "champion" in m["aliases"]
    }, "a campaign moved @champion"
    if refits:  # enough rows for a refit: a version with alias campaign-<name>, used by the next round
        (refit,) = refits
        aliases = {m["version"]: m["aliases"] for m in models_after if m["target"] == "ionic_conductivity"}
        assert "campaign-nasicon-srv" in aliases[refit["version"]]
        assert refit["version"] not in champion
        assert round2["model_versions"]["ionic_conductivity"] == refit["version"]
