"""The house: folders by pipeline stage, and every import points down the stack (a lower stage never imports a
higher one), function-level imports included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "amplifier"

# Lowest first. A module may import its own stage and any stage below it.
STAGES = [
    "errors",
    "clock",
    "redact",
    "platforms",
    "campaign",
    "plan",
    "publish",
    "delivery",
    "notify",
    "daemon",
    "cli",
]
RANK = {"errors": 0, "clock": 0, "redact": 0, "platforms": 0} | {
    stage: n for n, stage in enumerate(STAGES) if n >= 4
}


def stage_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "amplifier" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in RANK else None


def imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            if node.module == "amplifier":
                found += [(node.lineno, f"amplifier.{alias.name}") for alias in node.names]
    return found


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_lives_in_a_stage() -> None:
    loose = [
        p.relative_to(PACKAGE).as_posix()
        for p in modules()
        if p.parent == PACKAGE and p.stem not in {"__init__", "__main__", "errors", "clock", "redact"}
    ]
    assert loose == []


@pytest.mark.parametrize("path", modules(), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_imports_point_down_the_stack(path: Path) -> None:
    relative = path.relative_to(PACKAGE)
    here = relative.parts[0] if len(relative.parts) > 1 else relative.stem
    if here not in RANK:  # the package's own __init__ and __main__ sit on top
        return
    upward = [
        f"{relative}:{line}: imports {module} ({stage_of(module)} is above {here})"
        for line, module in imports(path)
        if (stage := stage_of(module)) is not None and RANK[stage] > RANK[here]
    ]
    assert upward == []


def test_every_stage_says_what_it_owns_and_may_import() -> None:
    for stage in ("campaign", "plan", "platforms", "publish", "delivery", "notify", "daemon", "cli"):
        doc = ast.get_docstring(ast.parse((PACKAGE / stage / "__init__.py").read_text(encoding="utf-8")))
        assert doc, stage
        assert "import" in doc.lower(), stage


@pytest.mark.parametrize("path", modules(), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_only_the_ledger_package_knows_its_database(path: Path) -> None:
    """Delivery, the daemon and the CLI use the ledger's interface; a second backend touches no other code."""
    relative = path.relative_to(PACKAGE)
    if relative.parts[:2] == ("delivery", "ledger"):
        return
    backend_specific = [
        f"{relative}:{line}: imports {module}"
        for line, module in imports(path)
        if module.split(".")[0] == "sqlite3"
        or module.startswith(("amplifier.delivery.ledger.sqlite", "amplifier.delivery.ledger.migrations"))
    ]
    assert backend_specific == []
