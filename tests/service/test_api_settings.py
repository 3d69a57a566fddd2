"""Settings: read from NASCREEN_* once, validated, secrets kept secret."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from models.targets import TargetName
from service.api.settings import ApiSettings, settings_from_env


def test_defaults_are_safe() -> None:
    s = ApiSettings(project_root=Path("/srv/nascreen"))
    assert (s.host, s.port) == ("127.0.0.1", 8000)
    assert s.cors_origins == ()
    assert s.api_key is None
    assert s.job_executor == "ray"
    assert (s.http_protocol, s.event_loop) == ("httptools", "uvloop")
    assert s.resolved_tracking_uri == "sqlite:////srv/nascreen/mlruns/mlflow.db"
    assert s.resolved_jobs_db == Path("/srv/nascreen/mlruns/jobs.db")


def test_from_env_parses_lists_numbers_and_secrets() -> None:
    env = {
        "NASCREEN_MAX_ITEMS_PER_REQUEST": "50",
        "NASCREEN_TARGETS": "ionic_conductivity, average_voltage",
        "NASCREEN_CORS_ORIGINS": "https://lab.example.org",
        "NASCREEN_API_KEY": "s3cret",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000",
        "UNRELATED": "x",
    }
    s = settings_from_env(env, port=9000)
    assert s.max_items_per_request == 50
    assert s.targets == (TargetName.IONIC_CONDUCTIVITY, TargetName.AVERAGE_VOLTAGE)
    assert s.cors_origins == ("https://lab.example.org",)
    assert s.api_key is not None and s.api_key.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(s)
    assert s.resolved_tracking_uri == "http://127.0.0.1:5000"
    assert s.port == 9000


def test_empty_api_key_means_no_key() -> None:
    assert settings_from_env({"NASCREEN_API_KEY": ""}).api_key is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("NASCREEN_MAX_ITEMS_PER_REQUEST", "0"),
        ("NASCREEN_JOB_EXECUTOR", "dask"),
        ("NASCREEN_TARGETS", "foo"),
        ("NASCREEN_HTTP_PROTOCOL", "zttp"),
        ("NASCREEN_EVENT_LOOP", "trio"),
    ],
)
def test_bad_env_values_are_rejected_naming_the_field(name: str, value: str) -> None:
    with pytest.raises(ValidationError, match=name.removeprefix("NASCREEN_").lower()):
        settings_from_env({name: value})


def test_serve_command_defaults_to_loopback_8000() -> None:
    from typer.testing import CliRunner

    from service.cli import _register, app

    _register()
    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "127.0.0.1" in result.output and "8000" in result.output
