"""`nascreen screen` with the issue-11 inputs that used to end in a raw traceback: wrong-typed or
overflowing spec values (item 2, the CLI side) and an output path that cannot be written (item 6). Each
must end with exit code 2 and one line naming the input, before any model is loaded (the store is empty:
reaching the model step would say "no champion" instead)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from service.cli import _register, app

pytestmark = pytest.mark.fuzz

NASICON: dict[str, Any] = {
    "name": "cli-fuzz",
    "family": "nasicon",
    "host": "Na3Zr2Si2PO12",
    "site": "Zr",
    "dopants": ["Hf", "Ti"],
    "fractions": [0.05, 0.1],
    "compensation": "na_content",
    "ranking": {"mode": "ucb", "kappa": 1.0, "objectives": ["ionic_conductivity"]},
}

# (case, change to the spec, text the one-line error must contain)
SPEC_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("family list", {"family": ["nasicon"]}, "family"),
    ("targets nested", {"targets": [["x"]]}, "targets"),
    ("exclude int", {"exclude": 5}, "exclude"),
    ("site list", {"site": ["Zr"]}, "site"),
    ("codoping site list", {"codoping": {"site": ["Zr"], "dopants": ["Ti"], "fractions": [0.1]}}, "site"),
    ("fractions overflow", {"fractions": {"start": 0.01, "stop": 1e308, "step": 1e-300}}, "fractions"),
    ("pareto fronts 2**70", {"ranking": {"mode": "pareto", "max_pareto_fronts": 2**70}}, "max_pareto_fronts"),
    (
        "template 2000 terms",
        {
            "site": None,
            "template": {
                "formula": "Na{" + "+".join(["x"] * 2000) + "}Zr{2-x}Si2PO12",
                "variables": {"x": {"start": 0.1, "stop": 0.2, "step": 0.1}},
            },
        },
        "template",
    ),
    ("lone surrogate host", {"host": "Na3Zr2\ud800Si2PO12"}, "host"),
]


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    if not any(c.name == "screen" for c in app.registered_commands):
        _register()
    return CliRunner()


def _screen(runner: CliRunner, spec: Path, out: Path, uri: str) -> tuple[int, str]:
    args = ["screen", str(spec), "--executor", "local", "--out", str(out), "--tracking-uri", uri]
    result = runner.invoke(app, args, catch_exceptions=False, terminal_width=400)
    return result.exit_code, result.output


def _write_spec(path: Path, doc: dict[str, Any]) -> Path:
    text = yaml.safe_dump({k: v for k, v in doc.items() if v is not None}, allow_unicode=False)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("case", "change", "names"), SPEC_CASES, ids=[c for c, _, _ in SPEC_CASES])
def test_a_wrong_typed_or_overflowing_spec_is_one_line_not_a_traceback(
    runner: CliRunner, empty_tracking_uri: str, tmp_path: Path, case: str, change: dict[str, Any], names: str
) -> None:
    spec = _write_spec(tmp_path / "spec.yaml", {**NASICON, **change})
    code, output = _screen(runner, spec, tmp_path / "out", empty_tracking_uri)
    assert code == 2, output
    assert "Traceback" not in output
    assert names in output, output
    assert "no champion" not in output  # refused at the spec, before any model step


@pytest.mark.parametrize("where", ["under a file", "read-only mount"])
def test_an_output_path_that_cannot_be_written_is_refused_first_in_one_line(
    runner: CliRunner, empty_tracking_uri: str, tmp_path: Path, where: str
) -> None:
    if where == "under a file":
        (tmp_path / "a-file").write_text("x")
        out = tmp_path / "a-file" / "screen"
    else:
        out = Path("/proc/nascreen-screen-out")  # /proc refuses new entries, for root too
    spec = _write_spec(tmp_path / "spec.yaml", NASICON)
    code, output = _screen(runner, spec, out, empty_tracking_uri)
    assert code == 2, output
    assert f"--out {out}: cannot write the screen there" in output.replace("\n", "")
    assert "Traceback" not in output and "no champion" not in output  # refused before any model step
