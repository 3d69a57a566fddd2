"""The README's commands stay true: every `nascreen ...` line in its code blocks parses with the real CLI,
every `make X` is a Makefile target and every repository path it names exists.

A user copies these lines first; an option renamed in the code but not in the README is a broken promise.
Each line is parsed by the real CLI with `--help` appended: an unknown option or sub-command fails the parse
(exit 2) before the eager `--help` stops it, and no command runs, so the test needs no model store.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.cli import _register, app

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def _code_blocks(text: str) -> list[str]:
    """The fenced code blocks' bodies, in order."""
    return re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M)


def _logical_lines(block: str) -> list[str]:
    """Lines with backslash continuations joined and trailing `# comments` removed."""
    joined = re.sub(r"\\\n\s*", " ", block)
    return [line.split("  #")[0].split(" # ")[0].strip() for line in joined.splitlines()]


def _readme_lines(prefix: str) -> list[str]:
    lines = [ln for b in _code_blocks(README.read_text()) for ln in _logical_lines(b)]
    return [ln for ln in lines if ln.startswith(prefix)]


def _args(line: str) -> list[str]:
    """The command's arguments; `[--flag]` marks an optional flag the README shows: keep the flag."""
    return [tok.strip("[]") for tok in shlex.split(line)[1:]]


def _parse(args: list[str]) -> tuple[int, str]:
    """(exit code, output) of the real CLI parsing args, stopped by `--help` before anything runs."""
    if not any(c.name == "predict" for c in app.registered_commands):
        _register()
    result = CliRunner().invoke(app, [*args, "--help"], terminal_width=200)
    return result.exit_code, result.output


NASCREEN_LINES = _readme_lines("nascreen ")


def test_the_readme_shows_cli_commands() -> None:
    assert len(NASCREEN_LINES) >= 15, NASCREEN_LINES


@pytest.mark.parametrize("line", NASCREEN_LINES)
def test_readme_cli_line_parses(line: str) -> None:
    code, output = _parse(_args(line))
    assert code == 0, f"README line {line!r}:\n{output}"


@pytest.mark.parametrize(
    "args", [["predict", "x.csv", "--no-such-option"], ["no-such-command"], ["campaign", "no-such-step"]]
)
def test_a_broken_line_would_be_caught(args: list[str]) -> None:
    """The checker is not vacuous: what the CLI does not have fails the parse."""
    code, output = _parse(args)
    assert code == 2, output


def test_readme_make_targets_exist() -> None:
    targets = set(re.findall(r"^([A-Za-z][\w-]*):", (ROOT / "Makefile").read_text(), flags=re.M))
    used = {_args(line)[0] for line in _readme_lines("make ")}
    assert {"demo", "test"} <= used
    assert used <= targets, used - targets


def test_readme_repository_paths_exist() -> None:
    named = set(re.findall(r"(?<![\w/.])((?:examples|benchmarks|data|docs)/[\w./-]*\w)", README.read_text()))
    missing = sorted(p for p in named if "*" not in p and not (ROOT / p).exists())
    assert not missing, missing
