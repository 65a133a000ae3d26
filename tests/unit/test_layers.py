"""Dependencies point one way: routes -> services / jobs -> archive -> upstream / storage / imaging
-> core.

Every module under `app/` is parsed (never imported, so no import side effects) and each of
its `import` / `from ... import` statements, including those under `if TYPE_CHECKING:` and
inside functions, is resolved to the module of `app` it names. Each rule below says which
packages a layer may import; `app` itself and `app.main` wire everything together and may
import anything.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app"


def _module_name(path: Path) -> str:
    parts = path.relative_to(APP.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {_module_name(path): path for path in sorted(APP.rglob("*.py"))}


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module a `from` import names (relative imports made absolute)."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(module: str, path: Path | None = None) -> set[str]:
    """The modules of `app` that `module` (read from `path`, by default its own file) imports;
    `from pkg import mod` counts as `pkg.mod`."""
    path = path or MODULES[module]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, path, node)
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                found.add(submodule if submodule in MODULES else target)
    return {name for name in found if name == "app" or name.startswith("app.")}


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@dataclass(frozen=True)
class Rule:
    """Modules in `layer` may import only modules in `allowed` (or, with `forbidden`, any but
    those)."""

    name: str
    layer: str
    allowed: tuple[str, ...] = ()
    forbidden: tuple[str, ...] = ()

    def broken_by(self, imported: str) -> bool:
        if self.forbidden:
            return any(_within(imported, package) for package in self.forbidden)
        return not any(_within(imported, package) for package in self.allowed)


RULES = [
    Rule("core imports nothing of app outside core", "app.core", allowed=("app.core",)),
    Rule(
        "upstream imports only core and upstream",
        "app.upstream",
        allowed=("app.core", "app.upstream"),
    ),
    Rule(
        "storage imports only core and storage", "app.storage", allowed=("app.core", "app.storage")
    ),
    # Decoding and rendering images: pure functions of bytes under one decoding policy, usable
    # by any layer above core without pulling the upstream, the store or the web in.
    Rule(
        "imaging imports only core and imaging", "app.imaging", allowed=("app.core", "app.imaging")
    ),
    # The archive pipeline (plan, fetch, render, write, record, resume, the HTTP rules of an
    # archive answer and the `Downloads` owner): no FastAPI, no jobs, no other service.
    Rule(
        "the archive pipeline imports only core, upstream, storage, imaging and itself",
        "app.archive",
        allowed=("app.core", "app.upstream", "app.storage", "app.imaging", "app.archive"),
    ),
    Rule(
        "services import only core, upstream, storage, imaging, the archive pipeline and services",
        "app.services",
        allowed=(
            "app.core",
            "app.upstream",
            "app.storage",
            "app.imaging",
            "app.archive",
            "app.services",
        ),
    ),
    Rule(
        "jobs import no api, web or sandbox",
        "app.jobs",
        forbidden=("app.api", "app.web", "app.sandbox", "app.cli", "app.main"),
    ),
    Rule(
        "web imports only core, upstream, storage and web",
        "app.web",
        allowed=("app.core", "app.upstream", "app.storage", "app.web"),
    ),
    # Deliveries sit beside jobs (whose sealed keys and callbacks they reuse), below the API.
    Rule(
        "deliveries import no api, web or sandbox",
        "app.deliveries",
        forbidden=("app.api", "app.web", "app.sandbox", "app.cli", "app.main"),
    ),
    # The emulator stands in for the real API, so it shares nothing with the product: it can be
    # run alone (`python -m app.sandbox`) and cannot drift into emulating our own code.
    Rule(
        "the sandbox imports nothing outside the sandbox", "app.sandbox", allowed=("app.sandbox",)
    ),
    Rule(
        "api modules import no main, sandbox or command-line client",
        "app.api",
        forbidden=("app.main", "app.sandbox", "app.cli"),
    ),
    # The command-line client sits on top, beside the web app: it calls the service or the
    # API the way any client would, and nothing of the service depends on it.
    Rule(
        "the command-line client imports only core, upstream, services and itself",
        "app.cli",
        allowed=("app.core", "app.upstream", "app.services", "app.cli"),
    ),
]


def _breaches(rule: Rule) -> set[tuple[str, str]]:
    return {
        (module, imported)
        for module in MODULES
        if _within(module, rule.layer)
        for imported in imports_of(module)
        if rule.broken_by(imported)
    }


def _routes_breaches() -> set[tuple[str, str]]:
    routes = "app.api.routes"
    return {
        (module, imported)
        for module in MODULES
        if module.startswith(routes + ".")
        for imported in imports_of(module)
        if imported.startswith(routes + ".") and imported != module
    }


def _check(name: str, breaches: set[tuple[str, str]]) -> None:
    found = ", ".join(f"{module} imports {imported}" for module, imported in sorted(breaches))
    assert not breaches, f"{name}: {found}"


@pytest.mark.parametrize("rule", RULES, ids=[rule.name for rule in RULES])
def test_layer_rule_holds(rule: Rule) -> None:
    _check(rule.name, _breaches(rule))


def test_routes_modules_do_not_import_each_other() -> None:
    _check("routes modules do not import other routes modules", _routes_breaches())


def test_nothing_of_the_service_imports_the_command_line_client() -> None:
    importers = sorted(
        module
        for module in MODULES
        if not _within(module, "app.cli")
        and any(_within(imported, "app.cli") for imported in imports_of(module))
    )
    assert importers == []


# Who may use the archive pipeline: the layers above it, and the wiring.
ARCHIVE_USERS = ("app.archive", "app.services", "app.jobs", "app.deliveries", "app.api")


def test_only_the_layers_above_import_the_archive_pipeline() -> None:
    importers = sorted(
        module
        for module in MODULES
        if module not in ("app", "app.main")
        and not any(_within(module, user) for user in ARCHIVE_USERS)
        and any(_within(imported, "app.archive") for imported in imports_of(module))
    )
    assert importers == []


def test_every_module_is_in_a_ruled_layer() -> None:
    """A new package must be given a rule: only the wiring (`app`, `app.main`) is unruled."""
    ruled = [rule.layer for rule in RULES]
    unruled = [
        module
        for module in MODULES
        if module not in ("app", "app.main") and not any(_within(module, p) for p in ruled)
    ]
    assert unruled == []


def test_the_walker_sees_imports_of_every_kind() -> None:
    """The rules are only as good as the walker: it must see plain, `from`, submodule and
    `TYPE_CHECKING` imports, or every rule above would pass vacuously."""
    assert len(MODULES) > 90
    assert "app.upstream.errors" in imports_of("app.upstream.client")
    # `from app.core import metrics` names the module app.core.metrics, not the package.
    assert "app.core.metrics" in imports_of("app.upstream.client")
    # Under `if TYPE_CHECKING:` in app/web/ops.py.
    assert "app.storage" in imports_of("app.web.ops")


def test_a_breach_is_reported(tmp_path: Path) -> None:
    """A core module written for the purpose, importing upwards in three spellings."""
    source = tmp_path / "example.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "from . import config\n"
        "from ..archive import stream\n"
        "if TYPE_CHECKING:\n"
        "    import app.jobs.service\n"
    )
    found = imports_of("app.core.example", source)
    assert found == {"app.core.config", "app.archive.stream", "app.jobs.service"}
    core = RULES[0]
    assert [i for i in sorted(found) if core.broken_by(i)] == [
        "app.archive.stream",
        "app.jobs.service",
    ]
    jobs = next(rule for rule in RULES if rule.layer == "app.jobs")
    assert jobs.broken_by("app.web.handlers")
    assert not jobs.broken_by("app.archive.stream")
