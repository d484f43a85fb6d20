"""The pytest fixtures for plugin authors (``valis_desktop.pytest_plugin``), used here as an
author uses them, and in generated projects run by a pytest of their own (strict asyncio mode,
a broken plugin, no configuration, no pytest-asyncio)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.core.sample_plugins import kit
from valis_desktop.api import Persona, TransientError
from valis_desktop.core.plugins import PluginHost, PluginLoadError, PluginState
from valis_desktop.core.provider_manager import ProviderManager
from valis_desktop.core.request import Status
from valis_desktop.pytest_plugin import (
    ValisChat,
    ValisLoadPlugins,
    ValisOpenSession,
    ValisTimeOut,
)
from valis_desktop.testing import ManualClock, Script, ScriptedProvider, first_chunk

SAMPLES = "tests.core.sample_plugins"


@pytest.fixture(autouse=True)
def providers_closed_at_teardown() -> Iterator[None]:
    """Set up before the valis_* fixtures and torn down after them: by then every provider the
    ``kit`` plugin registered has finished its streams and been closed."""
    kit.REGISTERED.clear()
    yield
    assert all(p.closed and p.active == 0 for p in kit.REGISTERED), kit.REGISTERED


@pytest.fixture
def valis_plugins() -> tuple[str, ...]:
    return (f"kit={SAMPLES}.kit",)


def kit_provider(manager: ProviderManager) -> ScriptedProvider:
    provider = manager.provider("kit")
    assert isinstance(provider, ScriptedProvider)
    return provider


async def test_valis_chat_answers_through_the_real_engine(
    valis_chat: ValisChat, valis_manager: ProviderManager
) -> None:
    first = await valis_chat("hello")
    second = await valis_chat("again")

    assert (first.status, first.provider_id, first.text) == ("answered", "kit", "re: hello")
    assert [a.outcome for a in first.attempts] == ["answered"]
    assert second.text == "re: again"
    # One conversation: the second message is asked with the first turn as context.
    assert [m.content for m in kit_provider(valis_manager).calls[1].messages] == [
        "hello",
        "re: hello",
        "again",
    ]


async def test_a_chain_for_one_message(
    valis_chat: ValisChat, valis_manager: ProviderManager
) -> None:
    kit_provider(valis_manager).push(Script(error=TransientError("HTTP 503"), chunks=()))

    reply = await valis_chat("hello", chain=["kit", "fallback"])

    assert (reply.status, reply.provider_id) == ("answered", "fallback")
    assert [a.outcome for a in reply.attempts] == ["failure", "answered"]
    assert reply.attempts[0].message == "HTTP 503"


async def test_sessions_default_to_the_tested_plugins_providers(
    valis_session: ValisOpenSession, valis_manager: ProviderManager
) -> None:
    persona = Persona(id="p", name="P", system_prompt="Be brief.")
    session = valis_session(persona=persona)

    reply = await session.submit("hello")

    assert set(valis_manager.provider_ids) == {"fallback", "kit"}
    assert session.chain == ("kit",)
    assert reply.provider_id == "kit"
    assert kit_provider(valis_manager).calls[0].messages[0].content == "Be brief."


async def test_teardown_stops_what_is_still_running(
    valis_session: ValisOpenSession, valis_manager: ProviderManager
) -> None:
    provider = kit_provider(valis_manager)
    provider.push(Script(hang_after=0))
    session = valis_session()
    session.submit("never answered")
    session.submit("never asked")

    await provider.wait_for_calls(1)
    # The fixtures' teardown stops the first, cancels the second and closes the provider;
    # ``providers_closed_at_teardown`` and the leak check of tests/core see to the rest.


async def test_valis_time_out_moves_the_chain_on_past_a_silent_provider(
    valis_session: ValisOpenSession,
    valis_manager: ProviderManager,
    valis_time_out: ValisTimeOut,
    valis_clock: ManualClock,
) -> None:
    provider = kit_provider(valis_manager)
    provider.push(Script(hang_after=0))
    request = valis_session(["kit", "fallback"]).submit("hello")
    started = valis_clock.now()

    reply = await valis_time_out(request)

    assert (reply.status, reply.provider_id) == ("answered", "fallback")
    assert reply.attempts[0] == ("kit", "failure", "no answer within 60 s")
    assert provider.finished == [request.id]  # the stream was closed
    assert 60 < valis_clock.now() - started < 62


async def test_valis_time_out_fails_a_stalled_answer_with_its_text(
    valis_session: ValisOpenSession, valis_manager: ProviderManager, valis_time_out: ValisTimeOut
) -> None:
    kit_provider(valis_manager).push(Script(chunks=("half ", "an answer"), hang_after=1))
    request = valis_session(["kit", "fallback"]).submit("hello")
    assert await first_chunk(request) == "half "

    reply = await valis_time_out(request)

    assert (reply.status, reply.provider_id, reply.text) == ("failed", "kit", "half ")
    assert "stalled" in reply.error


async def test_valis_time_out_returns_an_answer_that_needs_no_time(
    valis_session: ValisOpenSession, valis_time_out: ValisTimeOut, valis_clock: ManualClock
) -> None:
    reply = await valis_time_out(valis_session().submit("hello"))

    assert reply.status is Status.ANSWERED
    assert valis_clock.now() == 1000.0


def test_the_host_loads_in_strict_mode(valis_plugin_host: PluginHost) -> None:
    assert valis_plugin_host.strict
    assert {name: r.state for name, r in valis_plugin_host.records.items()} == {
        "fallback": PluginState.LOADED,
        "personas": PluginState.LOADED,
        "kit": PluginState.LOADED,
    }
    assert [p.id for r, p in valis_plugin_host.personas() if r.name == "kit"] == ["terse"]


def test_a_plugin_that_fails_to_import_raises_its_error(
    valis_load_plugins: ValisLoadPlugins,
) -> None:
    with pytest.raises(PluginLoadError, match="plugin 'broken'") as raised:
        valis_load_plugins(f"broken={SAMPLES}.broken_import")

    assert "No module named 'a_module_that_does_not_exist'" in str(raised.value)
    assert isinstance(raised.value.__cause__, ModuleNotFoundError)


def test_a_plugin_whose_hook_raises_fails_registration(
    valis_load_plugins: ValisLoadPlugins,
) -> None:
    host = valis_load_plugins(f"raising={SAMPLES}.raising_hook", builtins=False)

    with pytest.raises(PluginLoadError, match="RuntimeError: the hook fell over"):
        host.register_providers(ProviderManager())


def test_a_plugin_for_a_newer_api_is_refused(valis_load_plugins: ValisLoadPlugins) -> None:
    with pytest.raises(PluginLoadError, match=r"built for plugin API 2\.0"):
        valis_load_plugins(f"newer={SAMPLES}.newer_api")


def test_installed_plugins_load_by_entry_point_name(
    valis_load_plugins: ValisLoadPlugins,
) -> None:
    host = valis_load_plugins("echo-template", builtins=False)

    record = host.records["echo-template"]
    assert (record.distribution, record.state) == ("valis-echo-template", PluginState.LOADED)


def test_modules_load_under_their_own_name(valis_load_plugins: ValisLoadPlugins) -> None:
    host = valis_load_plugins(kit, builtins=False)

    assert list(host.records) == [kit.__name__]


def test_an_unknown_plugin_name_says_what_is_installed(
    valis_load_plugins: ValisLoadPlugins,
) -> None:
    with pytest.raises(
        LookupError, match="No installed plugin is named 'no-such-plugin'"
    ) as raised:
        valis_load_plugins("no-such-plugin")

    assert "echo-template" in str(raised.value)


def test_settings_and_secrets_reach_the_plugin(valis_load_plugins: ValisLoadPlugins) -> None:
    host = valis_load_plugins(
        f"configured={SAMPLES}.configured",
        settings={"configured": {"instances": [{"id": "c1"}]}},
        secrets={"c1": "s3cret"},
    )
    manager = ProviderManager()

    host.register_providers(manager)

    assert manager.provider("c1").display_name == "key=s3cret"
    assert [form.plugin for form in host.settings_forms()] == ["configured"]


# A project of a plugin author, run by a pytest of its own.

PYTEST_OPTIONS = """\
[tool.pytest.ini_options]
addopts = ["--strict-markers", "--strict-config", "-p", "no:cacheprovider", "-rfEs"]
filterwarnings = ["error"]
pythonpath = ["."]
"""

PYPROJECT = (
    PYTEST_OPTIONS
    + """\
asyncio_mode = "strict"
asyncio_default_fixture_loop_scope = "function"
"""
)

PROJECT = {
    "pyproject.toml": PYPROJECT,
    "my_plugin.py": """\
        from valis_desktop.api import hookimpl
        from valis_desktop.testing import ScriptedProvider

        @hookimpl
        def register_providers(register):
            register(ScriptedProvider(id="mine"))
        """,
    "broken_plugin.py": """\
        raise RuntimeError("the broken plugin's own words")
        """,
    "test_strict_mode.py": """\
        import pytest
        from valis_desktop.testing import Script

        pytestmark = pytest.mark.asyncio

        @pytest.fixture
        def valis_plugins():
            return ("mine=my_plugin",)

        async def test_chat(valis_chat):
            reply = await valis_chat("hello")
            assert (reply.status, reply.provider_id) == ("answered", "mine")
            assert reply.text == "re: hello"

        async def test_time_out(valis_session, valis_manager, valis_time_out):
            valis_manager.provider("mine").push(Script(hang_after=0))
            reply = await valis_time_out(valis_session(["mine", "fallback"]).submit("hello"))
            assert reply.provider_id == "fallback"
        """,
    "test_broken.py": """\
        import pytest

        @pytest.fixture
        def valis_plugins():
            return ("broken=broken_plugin",)

        def test_broken(valis_plugin_host):
            pass
        """,
    "test_unconfigured.py": """\
        def test_unconfigured(valis_plugin_host):
            pass
        """,
    "buggy_plugin.py": """\
        from valis_desktop.api import Provider, hookimpl

        class Buggy(Provider):
            id = "buggy"
            display_name = "Buggy"

            async def stream(self, request):
                yield request.prompt[100]  # IndexError: a bug, not an API error

        @hookimpl
        def register_providers(register):
            register(Buggy())
        """,
    "test_buggy.py": """\
        import pytest

        pytestmark = pytest.mark.asyncio

        @pytest.fixture
        def valis_plugins():
            return ("buggy=buggy_plugin",)

        async def test_buggy(valis_chat):
            reply = await valis_chat("hello", chain=["buggy", "fallback"])
            assert reply.provider_id == "fallback"  # passes; the teardown reports the bug
        """,
}


def run_pytest(
    project: Path, files: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    """Write ``files`` into ``project`` and run pytest there, as its author would."""
    for name, text in files.items():
        (project / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:pytest-qt", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_an_authors_project_in_strict_asyncio_mode(tmp_path: Path) -> None:
    done = run_pytest(tmp_path, PROJECT)
    out = done.stdout

    assert done.returncode == 1, out + done.stderr
    assert "3 passed, 3 errors" in out
    # A provider raising something else than the API's errors fails at teardown, with why.
    buggy = out[out.index("ERROR at teardown of test_buggy") :]
    assert "provider 'buggy' of plugin 'buggy' raised this while answering" in buggy
    assert "IndexError: string index out of range" in buggy
    # The broken plugin fails its test with its own error and traceback.
    broken = out[out.index("ERROR at setup of test_broken") : out.index("short test summary")]
    assert "plugin 'broken': Traceback" in broken
    assert 'broken_plugin.py", line 1, in <module>' in broken
    assert "RuntimeError: the broken plugin's own words" in broken
    assert "valis_desktop/pytest_plugin.py" not in broken  # no noise from the fixtures
    # Without configuration, the fixtures say what to configure.
    assert 'valis_plugins = ["your-plugin"] to [tool.pytest.ini_options]' in out


@pytest.mark.slow
def test_without_pytest_asyncio_the_fixtures_say_what_to_install(tmp_path: Path) -> None:
    files = {
        "pyproject.toml": PYTEST_OPTIONS + 'valis_plugins = ["my=my_plugin"]\n',
        "my_plugin.py": PROJECT["my_plugin.py"],
        "test_it.py": "def test_it(valis_manager):\n    pass\n",
        # Shadows the installed one, as if it were not installed.
        "pytest_asyncio.py": "raise ModuleNotFoundError(\"No module named 'pytest_asyncio'\")\n",
    }

    done = run_pytest(tmp_path, files, "-p", "no:asyncio")

    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 error" in done.stdout
    assert "valis_manager needs pytest-asyncio: pip install 'pytest-asyncio>=1.0'" in done.stdout


def test_importing_the_plugin_imports_nothing_of_the_engine() -> None:
    """Pytest imports it in every run where Valis Desktop is installed."""
    code = (
        "import json, sys\n"
        "import valis_desktop.pytest_plugin\n"
        "heavy = ('valis_desktop.', 'pydantic', 'PySide6', 'qasync')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(heavy))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert json.loads(done.stdout) == ["valis_desktop.pytest_plugin"]
