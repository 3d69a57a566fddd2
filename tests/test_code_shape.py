"""Small functions, checked: no function or method in the packages is longer than a screenful.

The limit counts the lines from ``def`` to the function's last line (docstring included, decorators not),
as ``ast`` gives them. A function past it is cut into named steps; this test lists every offender with its
file, line and length."""

from __future__ import annotations

import ast
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("featurize", "models", "screening", "service")
MAX_FUNCTION_LINES = 80


def long_functions(root: Path = PROJECT_ROOT, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """``path:line name (n lines)`` for every function or method of the packages longer than ``limit``."""
    found: list[str] = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    length = (node.end_lineno or node.lineno) - node.lineno + 1
                    if length > limit:
                        where = path.relative_to(root).as_posix()
                        found.append(f"{where}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_function_is_longer_than_a_screen() -> None:
    offenders = long_functions()
    assert not offenders, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(offenders)


def test_the_check_sees_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "long.py").write_text(f"def long():\n{body}\n\n\ndef short():\n    return 1\n")
    assert long_functions(tmp_path) == [f"models/long.py:1 long ({MAX_FUNCTION_LINES + 1} lines)"]
