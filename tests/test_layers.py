"""The package tree reads like docs/design.md: imports point inward, the domain has no I/O."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "tollway"
PURE_SHARED = {"tollway.errors", "tollway.money", "tollway.csvsafe"}
PURE_RATING = {
    f"tollway.rating.{m}" for m in ("cost", "rates", "tariff", "plans", "dialplan", "chain", "sheets", "headers")
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


MODULES = {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py")) if "migrations" not in p.parts}
PURE_MODULES = sorted(m for m in MODULES if m.endswith(".model") or m in PURE_SHARED | PURE_RATING | {"tollway.clock"})


def test_the_pure_modules_are_found() -> None:
    assert {"tollway.tree.model", "tollway.ledger.model", "tollway.money"} | PURE_RATING <= set(PURE_MODULES)


@pytest.mark.parametrize("module", PURE_MODULES)
def test_domain_modules_import_only_the_standard_library_and_other_domain_modules(module: str) -> None:
    for imported in MODULES[module]:
        top = imported.split(".")[0]
        if top == "tollway":
            owner = imported if imported in MODULES else imported.rsplit(".", 1)[0]
            assert owner in PURE_SHARED | PURE_RATING or owner.endswith(".model"), f"{module} imports {imported}"
        else:
            assert top in sys.stdlib_module_names or top == "__future__", f"{module} imports {imported}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_inner_layers_never_import_interfaces(module: str) -> None:
    if module.startswith(("tollway.http", "tollway.cli", "tollway.portal")):
        return
    outward = [
        i
        for i in MODULES[module]
        if i.startswith(("tollway.http", "tollway.cli", "tollway.portal", "fastapi", "typer", "uvicorn"))
    ]
    assert not outward, f"{module} imports {outward}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.endswith(".store") or m.startswith("tollway.store")))
def test_stores_never_import_services(module: str) -> None:
    assert not [i for i in MODULES[module] if ".service" in i], f"{module} imports a service"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("tollway.portal")))
def test_the_portal_calls_the_services_never_the_stores(module: str) -> None:
    stores = [
        i
        for i in MODULES[module]
        if (i.endswith(".store") or ".store." in i) and not i.startswith("tollway.store.database")
    ]
    assert not stores, f"{module} imports {stores}"
