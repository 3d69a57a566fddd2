"""`nascreen models` against a model trained in a temporary store."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from service.cli import models as models_cli

pytestmark = pytest.mark.mlflow


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    application = typer.Typer()
    models_cli.register(application)
    return application


def test_models_lists_the_champion(app, trained_retention_store) -> None:
    result = CliRunner().invoke(
        app, ["models", "--tracking-uri", trained_retention_store.tracking_uri], env={"COLUMNS": "300"}
    )
    assert result.exit_code == 0, result.output
    assert "nascreen-capacity_retention" in result.output
    assert "champion" in result.output
