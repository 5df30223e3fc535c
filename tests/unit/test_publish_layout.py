"""The publishers stay split by concept (issue 9): no module of ``publish/`` over 400 lines, no class over 250."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PUBLISH = Path(__file__).resolve().parents[2] / "src" / "amplifier" / "publish"
MAX_MODULE_LINES = 400
MAX_CLASS_LINES = 250


@pytest.mark.parametrize("path", sorted(PUBLISH.glob("*.py")), ids=lambda p: p.name)
def test_publish_modules_and_classes_stay_small(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{path.name}: split it by concept"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
            size = node.end_lineno - node.lineno + 1
            assert size <= MAX_CLASS_LINES, f"{path.name}: class {node.name} has {size} lines"
