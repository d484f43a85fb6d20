"""``valis-desktop plugins`` against real pip, in a fresh virtual environment.

The environment (valis-desktop installed editable from this checkout, with its dependencies from
the package index) is made once per module; each test gets its own settings file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import venv
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "plugins" / "valis-echo-template"
CORE = ("valis-desktop", "PySide6-Essentials", "qasync", "pluggy", "pydantic", "pydantic-core")


@pytest.fixture(scope="module")
def environment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment (no system site-packages) with valis-desktop installed."""
    where = tmp_path_factory.mktemp("venv") / "env"
    venv.create(where, with_pip=True, system_site_packages=False)
    python = where / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e", ROOT],
        check=True,
        timeout=300,
    )
    return where


@pytest.fixture
def cli(environment: Path, tmp_path: Path) -> Any:
    variables = dict(os.environ)
    variables["VALIS_SETTINGS"] = str(tmp_path / "settings.toml")
    variables.pop("VALIS_SAFE_MODE", None)
    variables.pop("PYTHONPATH", None)

    def run(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [environment / "bin" / "valis-desktop", "plugins", *arguments],
            capture_output=True,
            text=True,
            env=variables,
            timeout=300,
        )

    return run


def listing(cli: Any) -> dict[str, dict[str, Any]]:
    done = cli("list", "--json")
    assert done.returncode == 0, done.stderr
    return {record["name"]: record for record in json.loads(done.stdout)}


def providers(cli: Any) -> set[str]:
    return {p for record in listing(cli).values() for p in record["providers"]}


def core_versions(environment: Path) -> dict[str, str]:
    done = subprocess.run(
        [environment / "bin" / "python", "-m", "pip", "list", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    wanted = {name.lower() for name in CORE}
    found = {p["name"].lower().replace("_", "-"): p["version"] for p in json.loads(done.stdout)}
    return {name: version for name, version in found.items() if name in wanted}


def test_install_list_disable_enable_uninstall(cli: Any, environment: Path, tmp_path: Path) -> None:
    # A copy, so that the build leaves no build/ or egg-info behind in the checkout.
    template = tmp_path / TEMPLATE.name
    shutil.copytree(TEMPLATE, template, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    before = core_versions(environment)
    assert "echo-template" not in listing(cli)

    installed = cli("install", str(template))
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert "Successfully installed valis-echo-template-0.1.0" in installed.stdout

    record = listing(cli)["echo-template"]
    assert record["state"] == "loaded"
    assert record["distribution"] == "valis-echo-template"
    assert record["version"] == "0.1.0"
    assert record["providers"] == ["echo-template"]
    assert record["hooks"] == ["register_providers"]
    assert record["description"].startswith("A minimal Valis Desktop provider plugin")
    assert "echo-template" in cli("list").stdout
    assert "hooks: register_providers" in cli("list").stdout

    disabled = cli("disable", "echo-template")
    assert disabled.returncode == 0, disabled.stderr
    assert listing(cli)["echo-template"]["state"] == "disabled"
    assert "echo-template" not in providers(cli)

    enabled = cli("enable", "echo-template")
    assert enabled.returncode == 0, enabled.stderr
    assert listing(cli)["echo-template"]["state"] == "loaded"
    assert "echo-template" in providers(cli)

    removed = cli("uninstall", "echo-template")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert "Successfully uninstalled valis-echo-template" in removed.stdout
    assert "echo-template" not in listing(cli)
    assert core_versions(environment) == before


def test_a_plugin_conflicting_with_the_core_is_refused_and_changes_nothing(
    cli: Any, environment: Path, tmp_path: Path
) -> None:
    plugin = tmp_path / "valis-old-pydantic"
    (plugin / "valis_old_pydantic").mkdir(parents=True)
    (plugin / "valis_old_pydantic" / "__init__.py").write_text("")
    (plugin / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=69"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "valis-old-pydantic"\nversion = "0.1.0"\n'
        'dependencies = ["pydantic<2"]\n'
        '[project.entry-points."valis_desktop.plugins"]\nold-pydantic = "valis_old_pydantic"\n'
    )
    before = core_versions(environment)
    assert before["pydantic"].startswith("2.")

    refused = cli("install", str(plugin))

    assert refused.returncode != 0
    assert "pip failed" in refused.stderr
    assert "depends on pydantic<2" in refused.stderr  # pip's reason, shown
    assert "ResolutionImpossible" in refused.stdout + refused.stderr
    assert core_versions(environment) == before
    assert "old-pydantic" not in listing(cli)


def test_the_constraints_pin_the_running_core_versions() -> None:
    from importlib.metadata import version

    from valis_desktop.core import plugin_installer

    lines = plugin_installer.constraints_text().splitlines()
    assert f"valis-desktop=={version('valis-desktop')}" in lines
    assert f"pydantic=={version('pydantic')}" in lines
    assert {line.split("==")[0] for line in lines} == set(plugin_installer.CORE_DISTRIBUTIONS)


async def test_cancelling_kills_pip(tmp_path: Path) -> None:
    """Cancelling the task kills the process at once (a stand-in "python" that hangs)."""
    import asyncio

    from valis_desktop.core import plugin_installer

    hanging = tmp_path / "python"
    hanging.write_text("#!/bin/sh\necho started\nexec sleep 60\n")
    hanging.chmod(0o755)
    lines: list[str] = []
    started = asyncio.Event()

    def on_line(line: str) -> None:
        lines.append(line)
        started.set()

    task = asyncio.create_task(plugin_installer.install(["anything"], on_line, python=str(hanging)))
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert lines == ["started"]
