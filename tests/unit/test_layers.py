"""The package's layering: imports only point down (api -> ingest -> core -> delivery)."""

from __future__ import annotations

import ast
from pathlib import Path

ALERTD = Path(__file__).resolve().parents[2] / "alertd"

# A subpackage never imports one above it; core modules (alertd/*.py but the entry points)
# import neither the HTTP layer nor intake.
FORBIDDEN = {
    "delivery": ("alertd.api", "alertd.ingest"),
    "ingest": ("alertd.api",),
    "core": ("alertd.api", "alertd.ingest"),
}
ENTRY_POINTS = {"app.py", "cli.py"}


def _imports(path: Path) -> set[str]:
    """Every module name a file imports (absolute imports; `from alertd import x` as alertd.x)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def _layer(path: Path) -> str | None:
    rel = path.relative_to(ALERTD)
    if len(rel.parts) == 1:
        return None if rel.name in ENTRY_POINTS else "core"
    return rel.parts[0] if rel.parts[0] in FORBIDDEN else None


def test_imports_only_point_down() -> None:
    """No module of delivery/, ingest/ or the core imports a layer above it."""
    wrong = []
    for path in sorted(ALERTD.rglob("*.py")):
        layer = _layer(path)
        if layer is None:
            continue
        for name in sorted(_imports(path)):
            if name.startswith(FORBIDDEN[layer]):
                wrong.append(f"{path.relative_to(ALERTD.parent)} imports {name}")
    assert wrong == []


def test_the_rule_sees_an_upward_import(tmp_path: Path) -> None:
    """The import reader finds `from alertd.api import plumbing` as alertd.api.plumbing."""
    f = tmp_path / "x.py"
    f.write_text("from alertd.api import plumbing\nimport alertd.ingest.pollers\n")
    assert {"alertd.api.plumbing", "alertd.ingest.pollers"} <= _imports(f)
