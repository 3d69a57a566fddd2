"""One spec, the same candidates through both edges: `nascreen screen` and POST /v1/rank-dopants resolve
"every element the model knows" by the session's one rule (the intersection over the spec's models)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from service.api.app import create_app
from service.api.settings import ApiSettings
from service.cli import _register, app

pytestmark = pytest.mark.mlflow

BODY = {
    "family": "halide",
    "host": "Na2ZrCl6",
    "site": "Zr",
    "dopants": ["every element the model knows"],
    "fractions": [0.1],
    "compensation": "na_content",
    "ranking": {"mode": "value"},
    "top_k": 1000,
}


@pytest.fixture(scope="module")
def roomy_client(served_settings: ApiSettings) -> Iterator[TestClient]:
    """The served app with room for the whole model-elements screen in one request."""
    settings = served_settings.model_copy(update={"max_rank_candidates": 1000})
    with TestClient(create_app(settings)) as client:
        yield client


def test_cli_and_api_screen_the_same_candidates(
    roomy_client: TestClient, served_tracking_uri: str, tmp_path: Path
) -> None:
    spec = tmp_path / "known.yaml"
    spec.write_text(
        "name: known\nfamily: halide\nhost: Na2ZrCl6\nsite: Zr\n"
        "dopants: every element the model knows\nfractions: [0.1]\ncompensation: na_content\n"
        "ranking: {mode: value}\n"
    )
    if not any(c.name == "screen" for c in app.registered_commands):
        _register()
    out = tmp_path / "out"
    args = ["screen", str(spec), "--executor", "local", "--out", str(out), "--no-mlflow"]
    result = CliRunner().invoke(app, [*args, "--tracking-uri", served_tracking_uri], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    cli = {
        *pd.read_parquet(out / "ranked.parquet")["formula"],
        *pd.read_parquet(out / "rejected.parquet")["formula"],
    }

    response = roomy_client.post("/v1/rank-dopants", json=BODY)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["n_rejected"] <= 100  # every rejected row is in the response
    api = {c["formula"] for c in body["candidates"]} | {r["candidate"] for r in body["rejected"]}
    assert body["n_generated"] == len(cli) > 10
    assert api == cli
