"""The demo's P2 screen (examples/specs/p2_na0.6li0.2mn0.8o2_dopants.yaml) as `nascreen screen` runs it:
ranked by the predicted change in retention vs the host, with P(better than the host), the host row as
the 0 line, per-candidate delta intervals (their spread printed) and the measured host as the anchor.
Real quick retention champion (tests/conftest.py); the spec's retention part only (no voltage model)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from service.cli import _register, app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DEMO_SPEC = EXAMPLES / "specs" / "p2_na0.6li0.2mn0.8o2_dopants.yaml"


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    if not any(c.name == "screen" for c in app.registered_commands):
        _register()
    return CliRunner()


def test_the_demo_screen_ranks_by_change_vs_the_host(
    runner: CliRunner, trained_retention_store, tmp_path: Path
) -> None:
    spec = yaml.safe_load(DEMO_SPEC.read_text())
    assert spec["ranking"]["objectives"] == {"capacity_retention": {"by": "delta"}}  # what the demo ranks by
    spec["targets"] = ["capacity_retention"]
    (tmp_path / "specs").mkdir()
    shutil.copy(EXAMPLES / "anchors_p2.csv", tmp_path / "anchors_p2.csv")  # the spec names ../anchors_p2.csv
    spec_file = tmp_path / "specs" / "p2.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"
    args = ["screen", str(spec_file), "--executor", "local", "--out", str(out), "--no-mlflow"]
    args += ["--tracking-uri", trained_retention_store.tracking_uri]
    result = runner.invoke(app, args, catch_exceptions=False, terminal_width=120)
    assert result.exit_code == 0, result.output
    assert "Δ vs host" in result.output and "P>host" in result.output
    assert "90% interval widths over" in result.output and "anchored to 1 measured row" in result.output
    # the ranking line names how each objective is ranked (rich must not swallow "[by delta ...]" as markup)
    assert "[by delta vs reference" in " ".join(result.output.split())
    top = pd.read_csv(out / "top.csv")
    ranked = pd.read_parquet(out / "ranked.parquet")
    host = top[top["is_host"]]
    assert len(host) == 1 and host["capacity_retention_delta"].iloc[0] == pytest.approx(0.0, abs=1e-9)
    ok = top[~top["is_host"] & top["rank"].notna()]
    assert (np.diff(ok["capacity_retention_delta"].to_numpy()) <= 1e-9).all()  # ranked by the change
    assert {"capacity_retention_p_better", "capacity_retention_anchored_prediction"} <= set(top.columns)
    widths = ranked["capacity_retention_delta_upper_90"] - ranked["capacity_retention_delta_lower_90"]
    assert widths.max() > widths.min() > 0, "the delta intervals differ between candidates"
    # the printed spread is the spread of the written table
    assert f"max {widths.max():.3g}" in result.output
