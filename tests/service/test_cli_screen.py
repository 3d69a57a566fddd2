"""`nascreen screen` end to end on a tiny seed spec (91 halide candidates) against real champion models in
a temporary MLflow store (the session fixture of tests/service/conftest.py), single-process executor."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from service.cli import _register, app

SPEC = Path(__file__).resolve().parents[2] / "examples" / "specs" / "halide_na2zrcl6_dopants.yaml"

pytestmark = pytest.mark.mlflow


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    if not any(c.name == "screen" for c in app.registered_commands):
        _register()
    return CliRunner()


def _screen(runner: CliRunner, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["screen", *args], catch_exceptions=False, terminal_width=200)
    return result.exit_code, result.output


def test_missing_champion_is_reported_clearly(
    runner: CliRunner, empty_tracking_uri: str, tmp_path: Path
) -> None:
    code, output = _screen(
        runner, str(SPEC), "--executor", "local", "--out", str(tmp_path), "--tracking-uri", empty_tracking_uri
    )
    assert code == 2
    assert "no champion model registered for ionic_conductivity" in output
    assert "--train-if-missing" in output
    assert not (tmp_path / "ranked.parquet").exists()


def test_screen_end_to_end_then_resume(runner: CliRunner, served_tracking_uri: str, tmp_path: Path) -> None:
    out = tmp_path / "screen"
    common = ["--executor", "local", "--out", str(out), "--tracking-uri", served_tracking_uri, "--top", "5"]
    code, output = _screen(runner, str(SPEC), *common, "--chunk-size", "40")
    assert code == 0, output
    ranked = pd.read_parquet(out / "ranked.parquet")
    rejected = pd.read_parquet(out / "rejected.parquet")
    # every candidate is accounted for exactly once, accepted or rejected with a reason
    assert sorted([*ranked["candidate_id"], *rejected["candidate_id"]]) == list(range(91))
    assert (rejected["reason"].str.len() > 0).all()
    assert {
        "formula",
        "dopant",
        "fraction",
        "ionic_conductivity_prediction",
        "ionic_conductivity_std",
        "ionic_conductivity_in_domain",
        "score",
        "rank",
    } <= set(ranked.columns)
    pd.testing.assert_frame_equal(pd.read_csv(out / "ranked.csv")[["candidate_id"]], ranked[["candidate_id"]])
    for png in ("best_score_heatmap.png", "pareto_front.png"):
        assert (out / "plots" / png).read_bytes().startswith(b"\x89PNG")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["generated"] == 91
    assert summary["counts"]["rejected_neutrality"] == len(rejected)
    assert summary["chunks"] == {"total": 3, "reused": 0, "computed": 3}
    assert summary["model_versions"]["ionic_conductivity"] == "1"
    top = pd.read_csv(out / "top.csv")
    assert (
        top["formula"].tolist()
        == ranked.dropna(subset=["rank"]).sort_values("rank")["formula"].head(5).tolist()
    )
    assert top["formula"].iloc[0] in output and "generated" in output

    # the screen was logged to MLflow with its artifacts
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=served_tracking_uri)
    experiment = client.get_experiment_by_name("nascreen-screening")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id], f"tags.`nascreen.spec` = '{SPEC.stem}'")
    assert run.data.params["model_version.ionic_conductivity"] == "1"
    assert run.data.metrics["n_generated"] == 91
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert "plots/pareto_front.png" in artifacts

    # a second run of the same screen reuses every chunk and gives the same table
    code, output = _screen(runner, str(SPEC), *common, "--chunk-size", "40", "--no-mlflow")
    assert code == 0, output
    assert json.loads((out / "summary.json").read_text())["chunks"] == {
        "total": 3,
        "reused": 3,
        "computed": 0,
    }
    pd.testing.assert_frame_equal(pd.read_parquet(out / "ranked.parquet"), ranked)

    # a different spec (chunk plan) in the same directory is refused, and recomputed with --no-resume
    code, output = _screen(runner, str(SPEC), *common, "--chunk-size", "50", "--no-mlflow")
    assert code == 2 and "chunk size changed" in output and "--no-resume" in output
    code, output = _screen(runner, str(SPEC), *common, "--chunk-size", "50", "--no-resume", "--no-mlflow")
    assert code == 0, output
    assert json.loads((out / "summary.json").read_text())["chunks"] == {
        "total": 2,
        "reused": 0,
        "computed": 2,
    }
    pd.testing.assert_frame_equal(pd.read_parquet(out / "ranked.parquet"), ranked)
    shutil.rmtree(out)


def test_dopants_every_element_the_model_knows(
    runner: CliRunner, served_tracking_uri: str, tmp_path: Path
) -> None:
    """`dopants: model_elements` resolves to the champion's training elements, and only to them."""
    from models.tracking import load_champion

    spec = tmp_path / "known.yaml"
    spec.write_text(
        "name: known\nfamily: halide\nhost: Na2ZrCl6\nsite: Zr\n"
        "dopants: every element the model knows\nfractions: [0.1]\ncompensation: na_content\n"
        "ranking: {mode: value}\n"
    )
    out = tmp_path / "out"
    code, output = _screen(
        runner, str(spec), "--executor", "local", "--out", str(out), "--tracking-uri", served_tracking_uri
    )
    assert code == 0, output
    model, _ = load_champion("ionic_conductivity", served_tracking_uri)
    known = set(model.training_elements_)
    ranked = pd.read_parquet(out / "ranked.parquet")
    rejected = pd.read_parquet(out / "rejected.parquet")
    labels = [*ranked["dopant"], *rejected["dopant"]]
    dopants = {d.rstrip("0123456789+-") for d in labels if d and d != "host"}
    assert dopants and dopants <= known
    assert len(dopants) > 10  # the model's element set, not a fixed short list
