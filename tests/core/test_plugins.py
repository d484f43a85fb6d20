"""Plugin loading: isolation, quarantine, strict and safe modes, dogfooded built-ins."""

from __future__ import annotations

import asyncio
import io
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from valis_desktop.api import ENTRY_POINT_GROUP
from valis_desktop.core.engine import Engine
from valis_desktop.core.personas import PersonaLibrary
from valis_desktop.core.plugins import PluginHost, PluginLoadError, PluginState
from valis_desktop.core.provider_manager import ProviderManager
from valis_desktop.core.request import Status
from valis_desktop.core.settings import PluginsSettings, Settings, load_settings
from valis_desktop.terminal_chat import run_chat
from valis_desktop.testing import Script, ScriptedProvider

SAMPLES = "tests.core.sample_plugins"


def entry_point(name: str, module: str | None = None) -> EntryPoint:
    return EntryPoint(name=name, value=f"{SAMPLES}.{module or name}", group=ENTRY_POINT_GROUP)


def load(*names: str, **options: object) -> tuple[PluginHost, ProviderManager]:
    host = PluginHost(entry_points=[entry_point(n) for n in names], **options)  # type: ignore[arg-type]
    host.load()
    manager = ProviderManager()
    host.register_providers(manager)
    return host, manager


def test_builtins_load_through_the_same_hooks() -> None:
    host, manager = load()
    assert manager.provider_ids == ("fallback",)
    assert host.records["fallback"].builtin
    assert host.records["fallback"].providers == ["fallback"]
    assert [(r.name, p.id) for r, p in host.personas()] == [("personas", "assistant")]


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ("broken_import", "ModuleNotFoundError: No module named 'a_module_that_does_not_exist'"),
        ("raising_hook", "RuntimeError: the hook fell over"),
        ("duplicate_id", "ValueError: provider id 'fallback' is already taken"),
        ("bad_signature", "something_unknown"),
    ],
)
def test_a_broken_plugin_is_quarantined_and_the_rest_load(
    bad: str, error: str, caplog: pytest.LogCaptureFixture
) -> None:
    host, manager = load(bad, "good")

    record = host.records[bad]
    assert record.state is PluginState.QUARANTINED
    assert error in record.error
    assert "Traceback" in record.error or bad == "bad_signature"
    assert record.providers == []
    assert set(manager.provider_ids) == {"fallback", "good"}
    assert host.records["good"].state is PluginState.LOADED
    assert [w.getMessage() for w in caplog.records] == [
        f"plugin {bad!r} quarantined: {record.error_summary}"
    ]
    caplog.clear()


def test_a_hook_that_raises_leaves_nothing_half_registered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, manager = load("raising_hook")
    assert "half-registered" not in manager.provider_ids
    caplog.clear()


def test_strict_mode_raises_instead() -> None:
    with pytest.raises(PluginLoadError, match="broken_import") as raised:
        load("broken_import", strict=True)
    assert isinstance(raised.value.__cause__, ModuleNotFoundError)


def test_safe_mode_loads_builtins_only() -> None:
    host, manager = load("good", "broken_import", safe_mode=True)
    assert set(host.records) == {"fallback", "personas"}
    assert manager.provider_ids == ("fallback",)


def test_disabled_plugins_are_listed_but_not_loaded() -> None:
    host, manager = load("good", disabled={"good"})
    assert host.records["good"].state is PluginState.DISABLED
    assert "good" not in manager.provider_ids


def test_plugin_personas_are_collected() -> None:
    host, _ = load("good")
    assert [p.id for _, p in host.personas()] == ["assistant", "good.pirate"]
    assert host.records["good"].personas == ["good.pirate"]


async def test_a_plugin_raising_while_streaming_is_quarantined_and_the_chat_moves_on(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    host = PluginHost(entry_points=[entry_point("raising_provider")])
    engine = Engine.start(host=host, settings_path=tmp_path / "settings.toml")
    told: list[str] = []
    engine.on_plugin_quarantined = lambda record: told.append(record.name)
    session = engine.open_session(chain=["raising", "fallback"])

    reply = await session.submit("hello")

    assert reply.status is Status.ANSWERED and reply.provider_id == "fallback"
    assert reply.attempts[0].message == (
        "plugin 'raising_provider' raised ZeroDivisionError: a bug in the plugin"
    )
    await asyncio.sleep(0)  # one turn: the quarantine follows the attempt
    record = host.records["raising_provider"]
    assert record.state is PluginState.QUARANTINED
    assert record.error.startswith("It raised this while answering:\nTraceback")
    assert record.error_summary == "ZeroDivisionError: a bug in the plugin"
    assert "raising" not in engine.manager.provider_ids
    assert told == ["raising_provider"]
    assert [r.getMessage() for r in caplog.records] == [
        "plugin 'raising_provider': provider 'raising' raised",
        "plugin 'raising_provider' quarantined: it raised ZeroDivisionError while answering",
    ]
    caplog.clear()

    engine.set_plugin_enabled("raising_provider", True)  # "Try again"
    assert record.state is PluginState.LOADED and "raising" in engine.manager.provider_ids
    await engine.aclose()


async def test_a_connection_error_a_plugin_forgot_to_map_is_not_a_bug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    provider = ScriptedProvider(
        id="flaky", default=lambda _r: Script(error=ConnectionResetError("reset"))
    )
    manager = ProviderManager()
    manager.add_provider(provider, plugin="flaky-plugin")
    engine = Engine(PluginHost(safe_mode=True), manager, {})
    faults: list[str] = []
    manager.on_plugin_fault = lambda plugin, provider_id, error: faults.append(plugin)
    session = engine.open_session(chain=["flaky"])

    reply = await session.submit("hello")

    assert reply.status is Status.FAILED
    await asyncio.sleep(0)
    assert faults == []
    caplog.clear()
    await engine.aclose()


def test_plugins_get_their_settings_secrets_and_report_problems(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = {"configured": {"instances": [{"id": "one"}, {"name": "no id"}]}}
    secrets = {("configured", "one"): "s3cret"}
    host, manager = load(
        "configured", settings=settings, secrets=lambda plugin, name: secrets.get((plugin, name))
    )
    assert "one" in manager.provider_ids
    assert manager.provider("one").display_name == "key=s3cret"
    record = host.records["configured"]
    assert record.state is PluginState.LOADED
    assert record.problems == ["an instance without an id was skipped: {'name': 'no id'}"]
    assert "instance without an id" in caplog.records[0].getMessage()
    caplog.clear()


async def test_plugins_register_settings_forms() -> None:
    host, _ = load("configured", "good")
    [form] = host.settings_forms()
    assert (form.plugin, form.title, form.secret_field) == ("configured", "Configured", "key")
    assert form.test_connection is not None
    check = await form.test_connection(form.instance_model(id="x"), "secret")
    assert check.ok and check.models == ("m1",)


def test_a_plugin_built_for_a_newer_api_is_refused_with_a_clear_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    host, manager = load("newer_api", "good")

    record = host.records["newer_api"]
    assert record.state is PluginState.QUARANTINED
    assert record.error_summary == (
        "built for plugin API 2.0; this Valis Desktop supports 1.x — update Valis Desktop or "
        "use an older version of the plugin"
    )
    assert set(manager.provider_ids) == {"fallback", "good"}
    assert [w.getMessage() for w in caplog.records] == [
        f"plugin 'newer_api' quarantined: {record.error_summary}"
    ]
    caplog.clear()


@pytest.mark.parametrize(
    ("declared", "refused"),
    [
        (None, ""),
        ((1, 0), ""),
        ((0, 9), ""),
        ((1, 1), "built for plugin API 1.1; this Valis Desktop supports up to 1.0"),
        ((2, 0), "built for plugin API 2.0; this Valis Desktop supports 1.x"),
        ("1.0", "VALIS_API_VERSION must be a (major, minor) tuple of integers"),
    ],
)
def test_api_version_refusal(declared: object, refused: str) -> None:
    from valis_desktop.core.plugins import api_version_refusal

    message = api_version_refusal(declared, (1, 0))
    assert message.startswith(refused) if refused else message == ""


# Hot enabling and disabling: the host does it now, the engine also remembers it in settings.


def engine_with(tmp_path: Path, *names: str, disabled: tuple[str, ...] = ()) -> tuple[Engine, Path]:
    path = tmp_path / "settings.toml"
    settings = Settings(plugins=PluginsSettings(disabled=list(disabled)))
    host = PluginHost(entry_points=[entry_point(n) for n in names], disabled=disabled)
    library = PersonaLibrary(tmp_path / "personas")
    return Engine.start(settings=settings, host=host, library=library, settings_path=path), path


def test_disabling_removes_the_providers_and_persists(tmp_path: Path) -> None:
    engine, path = engine_with(tmp_path, "good", "other_pack")
    assert "good" in engine.manager.provider_ids

    record = engine.set_plugin_enabled("good", False)

    assert record.state is PluginState.DISABLED and record.providers == []
    assert "good" not in engine.manager.provider_ids
    assert "fallback" in engine.manager.provider_ids
    assert load_settings(path).settings.plugins.disabled == ["good"]
    assert engine.settings.plugins.disabled == ["good"]
    assert not engine.host._pm.has_plugin("good")
    engine.set_plugin_enabled("good", False)  # again: nothing more happens
    assert load_settings(path).settings.plugins.disabled == ["good"]


def test_enabling_brings_the_providers_back_without_a_restart(tmp_path: Path) -> None:
    engine, path = engine_with(tmp_path, "good", disabled=("good",))
    path.write_text('[plugins]\ndisabled = ["good", "someone-else"]\n', encoding="utf-8")
    assert "good" not in engine.manager.provider_ids

    record = engine.set_plugin_enabled("good", True)

    assert record.state is PluginState.LOADED and record.providers == ["good"]
    assert "good" in engine.manager.provider_ids
    assert load_settings(path).settings.plugins.disabled == ["someone-else"]
    assert engine.settings.plugins.disabled == []
    assert list(engine.host.records) == ["fallback", "personas", "good"]


def test_disable_then_enable_in_one_run(tmp_path: Path) -> None:
    engine, _ = engine_with(tmp_path, "good")
    engine.set_plugin_enabled("good", False)
    engine.set_plugin_enabled("good", True)
    assert "good" in engine.manager.provider_ids
    assert engine.host.records["good"].providers == ["good"]


async def test_an_answer_in_progress_finishes_when_its_plugin_is_disabled(
    tmp_path: Path,
) -> None:
    engine, _ = engine_with(tmp_path, "good")
    provider = engine.manager.provider("good")
    assert isinstance(provider, ScriptedProvider)
    gate = asyncio.Event()
    provider.push(Script(chunks=("still ", "here"), gate=gate))
    session = engine.open_session(chain=["good", "fallback"])
    reply = asyncio.ensure_future(session.submit("hello"))
    await provider.wait_for_calls(1)

    engine.set_plugin_enabled("good", False)
    assert "good" not in engine.manager.provider_ids
    gate.set()

    answered = await reply
    assert (answered.status, answered.provider_id, answered.text) == (
        Status.ANSWERED,
        "good",
        "still here",
    )
    await engine.aclose()


@pytest.mark.parametrize("builtin", ["fallback", "personas"])
def test_builtins_cannot_be_disabled(tmp_path: Path, builtin: str) -> None:
    engine, path = engine_with(tmp_path, "good")
    with pytest.raises(ValueError, match="built-in plugin and cannot be disabled"):
        engine.set_plugin_enabled(builtin, False)
    assert engine.host.records[builtin].state is PluginState.LOADED
    assert "fallback" in engine.manager.provider_ids
    assert not path.exists()


def test_an_unknown_plugin_is_refused(tmp_path: Path) -> None:
    engine, path = engine_with(tmp_path)
    with pytest.raises(ValueError, match="no plugin named 'nope'"):
        engine.set_plugin_enabled("nope", True)
    assert not path.exists()


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ("broken_import", "No module named 'a_module_that_does_not_exist'"),
        ("raising_hook", "RuntimeError: the hook fell over"),
        ("duplicate_id", "provider id 'fallback' is already taken"),
    ],
)
def test_a_plugin_failing_on_enable_is_quarantined_and_the_rest_work(
    tmp_path: Path, bad: str, error: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine, path = engine_with(tmp_path, bad, "good", disabled=(bad,))

    record = engine.set_plugin_enabled(bad, True)

    assert record.state is PluginState.QUARANTINED
    assert error in record.error and "Traceback" in record.error
    assert record.providers == []
    assert set(engine.manager.provider_ids) == {"fallback", "good"}
    assert engine.host.records["good"].state is PluginState.LOADED
    assert load_settings(path).settings.plugins.disabled == []
    # Disabling the quarantined plugin keeps it from being tried at the next start.
    engine.set_plugin_enabled(bad, False)
    assert engine.host.records[bad].state is PluginState.DISABLED
    assert engine.host.records[bad].error == ""
    caplog.clear()


def test_strict_mode_raises_on_enable() -> None:
    host = PluginHost(
        entry_points=[entry_point("broken_import")], disabled={"broken_import"}, strict=True
    )
    host.load()
    with pytest.raises(PluginLoadError, match="broken_import"):
        host.enable("broken_import", ProviderManager())


async def test_the_terminal_chat_says_when_a_plugin_is_set_aside(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    engine = Engine.start(
        host=PluginHost(entry_points=[entry_point("raising_provider")]),
        library=PersonaLibrary(tmp_path / "personas"),
    )
    out, err = io.StringIO(), io.StringIO()

    status = await run_chat(
        engine, chain=("raising", "fallback"), persona_id=None, messages=["hi"], out=out, err=err
    )

    assert status == 0 and "not a language model" in out.getvalue()
    assert (
        "[plugin raising_provider failed while answering (ZeroDivisionError: a bug in the "
        "plugin) and was set aside until the next start]"
    ) in err.getvalue()
    caplog.clear()
    await engine.aclose()


def test_warming_up_asks_the_first_installed_provider_of_the_chain(
    caplog: pytest.LogCaptureFixture,
) -> None:
    warmed: list[str] = []

    class Warming(ScriptedProvider):
        def warm_up(self) -> None:
            warmed.append(self.id)
            if self.id == "broken":
                raise RuntimeError("no warmth")

    manager = ProviderManager()
    for provider_id in ("first", "second", "broken"):
        manager.add_provider(Warming(id=provider_id), plugin="test")
    engine = Engine(PluginHost(safe_mode=True), manager, {})

    engine.warm_up(["not-installed", "first", "second"])
    engine.warm_up(["broken", "first"])  # a provider failing to warm up is only logged
    engine.warm_up([])

    assert warmed == ["first", "broken"]
    assert [r.getMessage() for r in caplog.records] == ["provider 'broken' failed to warm up"]
    caplog.clear()
