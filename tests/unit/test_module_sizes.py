"""The package stays split by concept (issue 9): no module of ``amplifier`` over 400 lines, no class over 250."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "amplifier"
MODULES = sorted(PACKAGE.rglob("*.py"))
MAX_MODULE_LINES = 400
MAX_CLASS_LINES = 250


def _name(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def test_the_package_has_modules_to_check() -> None:
    assert len(MODULES) > 50
    assert PACKAGE / "delivery" / "ledger" / "migrations.py" in MODULES


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_no_module_over_400_lines_and_no_class_over_250(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    lines = len(text.splitlines())
    assert lines <= MAX_MODULE_LINES, f"{_name(path)} has {lines} lines: split it by concept"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
            size = node.end_lineno - node.lineno + 1
            assert size <= MAX_CLASS_LINES, f"{_name(path)}: class {node.name} has {size} lines"
