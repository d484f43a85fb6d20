"""Plugins in plugins/ import nothing of the application but its public API.

(The API and core contracts are checked by import-linter, configured in pyproject.toml.)
"""

from __future__ import annotations

import ast
from pathlib import Path

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
ALLOWED = {"valis_desktop", "valis_desktop.api"}


def imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "valis_desktop":
                modules.update(f"valis_desktop.{alias.name}" for alias in node.names)
            else:
                modules.add(node.module)
    return modules


def forbidden_imports(source: Path) -> list[str]:
    return sorted(
        module
        for module in imported_modules(source)
        if module.split(".")[0] == "valis_desktop" and module not in ALLOWED
    )


def test_plugins_import_only_the_public_api() -> None:
    sources = sorted(p for p in PLUGINS.rglob("*.py") if "tests" not in p.parts)
    violations = {str(s.relative_to(PLUGINS)): forbidden_imports(s) for s in sources}
    assert {path: found for path, found in violations.items() if found} == {}


def test_the_checker_catches_a_forbidden_import(tmp_path: Path) -> None:
    source = tmp_path / "plugin.py"
    source.write_text(
        "from valis_desktop.core.session import Session\nfrom valis_desktop import api\n"
    )
    assert forbidden_imports(source) == ["valis_desktop.core.session"]
