"""The settings file: a bad field never resets the rest, and the file is left alone."""

from __future__ import annotations

import asyncio
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from pydantic import ValidationError

from valis_desktop.api import ENTRY_POINT_GROUP
from valis_desktop.core.engine import Engine
from valis_desktop.core.personas import PersonaLibrary
from valis_desktop.core.plugins import PluginHost
from valis_desktop.core.settings import Settings, load_settings, read_raw, save_settings
from valis_desktop.testing import Script, ScriptedProvider

GOOD = """
[engine]
global_limit = 4
default_chain = ["fallback"]

[engine.breaker]
failure_threshold = 5

[providers.fallback]
limit = 2

[plugins]
disabled = ["nothing"]

[plugins.openai]
instances = [{ id = "ollama" }]
"""


def test_a_missing_file_gives_the_defaults(tmp_path: Path) -> None:
    loaded = load_settings(tmp_path / "settings.toml")
    assert loaded.settings == Settings()
    assert loaded.problems == []


def test_a_valid_file_configures_the_engine(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text(GOOD)
    settings = load_settings(path).settings

    config = settings.engine_config()
    assert config.global_limit == 4
    assert config.breaker.failure_threshold == 5
    assert settings.plugin_tables() == {"openai": {"instances": [{"id": "ollama"}]}}
    engine = Engine.start(settings=settings, host=PluginHost(entry_points=[]))
    assert engine.default_chain == ("fallback",)
    assert engine.manager.snapshot().providers[0].limit == 2
    assert engine.open_session().chain == ("fallback",)


def test_an_invalid_field_falls_back_alone_and_the_file_is_untouched(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "settings.toml"
    text = GOOD.replace("global_limit = 4", "global_limit = 0\ngap_timeout = 'soon'\ncolour = 1")
    path.write_text(text)

    loaded = load_settings(path)

    engine = loaded.settings.engine
    assert engine.global_limit == 10 and engine.gap_timeout == 60.0  # defaults for the bad ones
    assert engine.default_chain == ["fallback"]  # the good ones kept
    assert engine.breaker.failure_threshold == 5
    problems = "\n".join(loaded.problems)
    assert "engine.global_limit: Input should be greater than or equal to 1 (found 0)" in problems
    assert "engine.gap_timeout" in problems and "engine.colour" in problems
    assert path.read_text() == text
    assert len(caplog.records) == 3
    caplog.clear()


def test_a_broken_file_is_reported_and_left_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "settings.toml"
    path.write_text("[engine\nglobal_limit = ")
    loaded = load_settings(path)
    assert loaded.settings == Settings()
    assert "could not be read" in loaded.problems[0]
    assert path.read_text() == "[engine\nglobal_limit = "
    caplog.clear()


def test_saving_over_a_broken_file_keeps_it_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "settings.toml"
    path.write_text("[engine\nglobal_limit = ")
    (tmp_path / "settings.toml.unreadable-1").write_text("an older one")

    save_settings({"plugins": {"disabled": ["x"]}}, path)

    assert read_raw(path) == {"plugins": {"disabled": ["x"]}}
    assert (tmp_path / "settings.toml.unreadable-2").read_text() == "[engine\nglobal_limit = "
    assert (tmp_path / "settings.toml.unreadable-1").read_text() == "an older one"
    assert [r.getMessage() for r in caplog.records] == [
        f"the settings file could not be read; it was kept as {tmp_path}/settings.toml.unreadable-2"
    ]
    caplog.clear()


def test_enabling_an_enabled_plugin_leaves_the_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    text = "# my settings\n[plugins]\ndisabled = []\n"
    path.write_text(text)
    good = EntryPoint(name="good", value="tests.core.sample_plugins.good", group=ENTRY_POINT_GROUP)
    engine = Engine.start(
        host=PluginHost(entry_points=[good]),
        library=PersonaLibrary(tmp_path / "personas"),
        settings_path=path,
    )

    engine.set_plugin_enabled("good", True)

    assert path.read_text() == text  # comments and all


def test_saving_validates_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "settings.toml"
    raw = {"engine": {"global_limit": 3}, "plugins": {"openai": {"instances": [{"id": "x"}]}}}
    save_settings(raw, path)
    assert read_raw(path) == raw
    assert load_settings(path).settings.engine.global_limit == 3
    with pytest.raises(ValidationError):
        save_settings({"engine": {"global_limit": 0}}, path)
    assert read_raw(path) == raw  # nothing written


def test_settings_apply_to_a_running_engine(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text(GOOD)
    engine = Engine.start(settings=load_settings(path).settings, host=PluginHost(entry_points=[]))
    session = engine.open_session()
    engine.manager.breaker("fallback")._consecutive_failures = 2  # state survives

    raw = read_raw(path)
    raw["engine"]["global_limit"] = 7
    raw["engine"]["queue_limit"] = 5
    raw["engine"]["breaker"]["failure_threshold"] = 9
    del raw["providers"]
    engine.apply_settings(save_settings(raw, path))

    snapshot = engine.manager.snapshot()
    assert snapshot.global_limit == 7
    assert snapshot.providers[0].limit == 64  # back to the provider's own default
    assert engine.manager.breaker("fallback").config.failure_threshold == 9
    assert engine.manager.breaker("fallback").consecutive_failures == 2
    assert session.max_queue == 5


async def test_saved_instances_take_effect_without_a_restart(tmp_path: Path) -> None:
    sample = EntryPoint(
        name="configured", value="tests.core.sample_plugins.configured", group=ENTRY_POINT_GROUP
    )
    path = tmp_path / "settings.toml"
    raw = {"plugins": {"configured": {"instances": [{"id": "old"}, {"id": "kept"}]}}}
    settings = save_settings(raw, path)
    engine = Engine.start(
        settings=settings, host=PluginHost(entry_points=[sample], settings=settings.plugin_tables())
    )
    old = engine.manager.provider("old")
    assert isinstance(old, ScriptedProvider)
    gate = asyncio.Event()
    old.push(Script(chunks=("still answering",), gate=gate))
    session = engine.open_session(chain=["old", "fallback"])
    answering = session.submit("q")
    await old.wait_for_calls(1)

    raw["plugins"]["configured"]["instances"] = [{"id": "kept"}, {"id": "new"}]
    engine.apply_settings(save_settings(raw, path))

    assert set(engine.manager.provider_ids) == {"fallback", "kept", "new"}
    assert engine.host.records["configured"].providers == ["kept", "new"]
    assert not old.closed  # its answer is not finished yet
    gate.set()
    reply = await answering
    assert (reply.provider_id, reply.text) == ("old", "still answering")
    await asyncio.sleep(0)  # the retired provider closes once idle
    assert old.closed
    later = await session.submit("again")
    assert later.provider_id == "fallback"  # "old" is gone: skipped as not installed
    await engine.aclose()
