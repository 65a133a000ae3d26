"""Route modules depend on dependencies and services, never on one another."""

from __future__ import annotations

import ast
from pathlib import Path

import app.api.routes

ROUTES = Path(app.api.routes.__file__).parent


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_no_route_module_imports_another() -> None:
    modules = sorted(ROUTES.glob("*.py"))
    assert len(modules) > 5  # the directory was found
    offenders = {
        path.name: sorted(n for n in _imported(path) if n.startswith("app.api.routes"))
        for path in modules
    }
    assert {name: found for name, found in offenders.items() if found} == {}
