"""Plugins installed or removed while the application runs: found again from real distribution
metadata on ``sys.path`` (what pip writes), loaded or taken out without a restart."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import pytest

from valis_desktop.api import ENTRY_POINT_GROUP
from valis_desktop.core.engine import Engine
from valis_desktop.core.personas import PersonaLibrary
from valis_desktop.core.plugins import PluginHost, PluginState
from valis_desktop.core.settings import PluginsSettings, Settings

from ..sample_dists import Site

PREFIX = "sample-"


def installed() -> list[EntryPoint]:
    """The sample plugins only (the environment's real plugins stay out of these tests)."""
    return [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name.startswith(PREFIX)]


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    root = tmp_path / "site-packages"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    before = set(sys.modules)
    yield Site(root)
    for name in set(sys.modules) - before:
        if name.startswith(PREFIX.replace("-", "_")):
            del sys.modules[name]


def start(tmp_path: Path, disabled: list[str] | None = None) -> Engine:
    disabled = disabled or []
    return Engine.start(
        settings=Settings(plugins=PluginsSettings(disabled=disabled)),
        host=PluginHost(entry_points=installed, disabled=disabled),
        library=PersonaLibrary(tmp_path / "personas"),
        settings_path=tmp_path / "settings.toml",
    )


def test_a_plugin_installed_while_running_loads_with_its_providers_and_personas(
    site: Site, tmp_path: Path
) -> None:
    engine = start(tmp_path)
    assert "sample-one" not in engine.manager.provider_ids

    site.install("sample-one")
    changed = engine.discover_plugins()

    assert [record.name for record in changed] == ["sample-one"]
    record = engine.host.records["sample-one"]
    assert record.state is PluginState.LOADED
    assert (record.distribution, record.version) == ("sample-one", "1.0")
    assert record.description == "A sample plugin."
    assert record.homepage == "https://example.org/sample"
    assert record.hooks == ["register_personas", "register_providers"]
    assert "sample-one" in engine.manager.provider_ids
    assert engine.personas["sample-one:pirate"].name == "Pirate 1.0"
    assert engine.discover_plugins() == []  # nothing new the second time


def test_a_removed_plugin_leaves_and_says_a_restart_finishes_it(site: Site, tmp_path: Path) -> None:
    site.install("sample-two")
    engine = start(tmp_path)
    assert "sample-two" in engine.manager.provider_ids

    site.uninstall("sample-two")
    changed = engine.discover_plugins()

    record = engine.host.records["sample-two"]
    assert changed == [record]
    assert record.state is PluginState.UNINSTALLED
    assert "restart to finish removing" in record.restart_note
    assert record.providers == [] and "sample-two" not in engine.manager.provider_ids
    assert "sample-two:pirate" not in engine.personas


def test_a_removed_disabled_plugin_is_forgotten(site: Site, tmp_path: Path) -> None:
    site.install("sample-three")
    engine = start(tmp_path, disabled=["sample-three"])
    assert engine.host.records["sample-three"].state is PluginState.DISABLED

    site.uninstall("sample-three")
    engine.discover_plugins()

    assert "sample-three" not in engine.host.records


def test_reinstalling_the_same_version_brings_it_back(site: Site, tmp_path: Path) -> None:
    site.install("sample-four")
    engine = start(tmp_path)
    site.uninstall("sample-four")
    engine.discover_plugins()

    site.install("sample-four")
    engine.discover_plugins()

    assert engine.host.records["sample-four"].state is PluginState.LOADED
    assert "sample-four" in engine.manager.provider_ids


def test_an_update_of_loaded_code_asks_for_a_restart(site: Site, tmp_path: Path) -> None:
    site.install("sample-five", "1.0")
    engine = start(tmp_path)

    site.install("sample-five", "2.0")
    changed = engine.discover_plugins()

    record = engine.host.records["sample-five"]
    assert changed == [record]
    assert record.state is PluginState.LOADED and record.version == "1.0"
    assert record.restart_note == "Version 2.0 is installed; restart Valis Desktop to use it."
    assert "sample-five" in engine.manager.provider_ids


def test_a_fixed_version_of_a_plugin_that_failed_to_import_loads(
    site: Site, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    site.install("sample-six", "1.0", source="import a_module_that_does_not_exist\n")
    engine = start(tmp_path)
    assert engine.host.records["sample-six"].state is PluginState.QUARANTINED
    caplog.clear()

    site.install("sample-six", "1.1")
    engine.discover_plugins()

    record = engine.host.records["sample-six"]
    assert record.state is PluginState.LOADED and record.version == "1.1"
    assert record.error == "" and "sample-six" in engine.manager.provider_ids


def test_a_broken_plugin_installed_while_running_is_quarantined(
    site: Site, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = start(tmp_path)
    site.install("sample-seven", source="raise RuntimeError('broken on import')\n")

    engine.discover_plugins()

    record = engine.host.records["sample-seven"]
    assert record.state is PluginState.QUARANTINED
    assert record.error_summary == "RuntimeError: broken on import"
    assert [r.getMessage() for r in caplog.records] == [
        "plugin 'sample-seven' quarantined: RuntimeError: broken on import"
    ]
    caplog.clear()
    assert engine.manager.provider_ids == ("fallback",)


def test_a_newly_installed_plugin_listed_as_disabled_stays_out(site: Site, tmp_path: Path) -> None:
    engine = start(tmp_path, disabled=["sample-eight"])
    site.install("sample-eight")

    engine.discover_plugins()

    assert engine.host.records["sample-eight"].state is PluginState.DISABLED
    assert "sample-eight" not in engine.manager.provider_ids


def test_enabling_and_disabling_brings_and_takes_its_personas(site: Site, tmp_path: Path) -> None:
    site.install("sample-nine")
    engine = start(tmp_path)
    assert "sample-nine:pirate" in engine.personas

    engine.set_plugin_enabled("sample-nine", False)
    assert "sample-nine:pirate" not in engine.personas
    engine.set_plugin_enabled("sample-nine", True)
    assert "sample-nine:pirate" in engine.personas
    assert engine.host.records["sample-nine"].personas == ["pirate"]


def test_safe_mode_discovers_nothing(site: Site, tmp_path: Path) -> None:
    host = PluginHost(entry_points=installed, safe_mode=True)
    site.install("sample-ten")
    engine = Engine.start(host=host, library=PersonaLibrary(tmp_path / "personas"))

    assert engine.discover_plugins() == []
    assert "sample-ten" not in engine.host.records


def test_looking_again_without_changes_reports_nothing(site: Site, tmp_path: Path) -> None:
    site.install("sample-calm", "1.0")
    site.install("sample-moved", "1.0")
    engine = start(tmp_path)
    site.install("sample-calm", "2.0")
    site.uninstall("sample-moved")
    assert len(engine.discover_plugins()) == 2

    assert engine.discover_plugins() == []


def test_an_update_of_a_plugin_disabled_while_running_waits_for_a_restart(
    site: Site, tmp_path: Path
) -> None:
    site.install("sample-paused", "1.0")
    engine = start(tmp_path)
    engine.set_plugin_enabled("sample-paused", False)  # its 1.0 code stays imported

    site.install("sample-paused", "2.0")
    engine.discover_plugins()
    engine.set_plugin_enabled("sample-paused", True)

    record = engine.host.records["sample-paused"]
    assert record.version == "1.0"
    assert record.restart_note == "Version 2.0 is installed; restart Valis Desktop to use it."
    provider = engine.manager.provider("sample-paused")
    assert provider.display_name == "Sample 1.0"  # what runs, and what the record says


def test_going_back_to_the_running_version_needs_no_restart(site: Site, tmp_path: Path) -> None:
    site.install("sample-back", "1.0")
    engine = start(tmp_path)
    site.install("sample-back", "2.0")
    engine.discover_plugins()

    site.install("sample-back", "1.0")
    changed = engine.discover_plugins()

    record = engine.host.records["sample-back"]
    assert changed == [record] and record.restart_note == ""


def test_a_broken_plugin_removed_is_forgotten_and_its_fix_loads(
    site: Site, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    site.install("sample-broken", "1.0", source="import a_module_that_does_not_exist\n")
    engine = start(tmp_path)
    caplog.clear()

    site.uninstall("sample-broken")
    engine.discover_plugins()
    assert "sample-broken" not in engine.host.records

    site.install("sample-broken", "1.1")
    engine.discover_plugins()
    assert engine.host.records["sample-broken"].state is PluginState.LOADED
    assert "sample-broken" in engine.manager.provider_ids


PERSONAS_RAISE = """\
from collections.abc import AsyncIterator

from valis_desktop.api import ChatRequest, Provider, StreamItem, hookimpl


class _Provider(Provider):
    id = "sample-half"
    display_name = "Half"

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamItem]:
        yield "half"


@hookimpl
def register_providers(register):
    register(_Provider())


@hookimpl
def register_personas(register):
    raise RuntimeError("personas fell over")
"""


def test_a_plugin_quarantined_in_a_later_hook_takes_its_providers_out(
    site: Site, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    site.install("sample-half", source=PERSONAS_RAISE)
    engine = start(tmp_path)  # providers first, then personas: that hook raises

    record = engine.host.records["sample-half"]
    assert record.state is PluginState.QUARANTINED
    assert record.providers == [] and "sample-half" not in engine.manager.provider_ids
    caplog.clear()

    engine.set_plugin_enabled("sample-half", True)  # Try again: same failure, same outcome

    assert record.state is PluginState.QUARANTINED
    assert record.error_summary == "RuntimeError: personas fell over"
    assert "sample-half" not in engine.manager.provider_ids
    caplog.clear()
