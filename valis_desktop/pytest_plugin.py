"""Pytest fixtures for plugin authors: test a provider against the real engine.

Installed with Valis Desktop and loaded by pytest on its own (entry point group ``pytest11``,
name ``valis_desktop``; ``-p no:valis_desktop`` turns it off). The fixtures load your plugin
the way the application does, but in strict mode — a plugin that fails to import or to register
fails the test with its error instead of being quarantined — and drive its providers through a
real ``ProviderManager`` and ``Session`` on a manual clock: no test waits for real time.

Name the plugins to load in your project's pytest configuration (entry point names of installed
distributions, or ``name=module`` pairs)::

    [tool.pytest.ini_options]
    asyncio_mode = "auto"
    asyncio_default_fixture_loop_scope = "function"
    valis_plugins = ["my-plugin"]

and ask::

    async def test_it_answers(valis_chat):
        reply = await valis_chat("hello")
        assert (reply.status, reply.provider_id) == ("answered", "my-provider")

The asynchronous fixtures need pytest-asyncio (1.0 or newer), in its auto or strict mode.

Importing this module costs nothing much: pytest loads it in every run of every project in an
environment where Valis Desktop is installed, so the engine is imported only when a fixture is
used.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import traceback
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, TypeVar, cast

import pytest

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from valis_desktop.api import GenerationParams, Message, Persona
    from valis_desktop.core.clock import ManualClock
    from valis_desktop.core.plugins import PluginHost
    from valis_desktop.core.provider_manager import EngineConfig, ProviderManager
    from valis_desktop.core.request import Reply, Request, SessionEvent
    from valis_desktop.core.session import Session

__all__ = [
    "ValisChat",
    "ValisLoadPlugins",
    "ValisOpenSession",
    "ValisTimeOut",
]

INI_PLUGINS = "valis_plugins"

_F = TypeVar("_F", bound=Callable[..., Any])


class ValisLoadPlugins(Protocol):
    """The ``valis_load_plugins`` fixture."""

    def __call__(
        self,
        *plugins: str | ModuleType,
        settings: Mapping[str, Mapping[str, Any]] | None = None,
        secrets: Mapping[str, str] | None = None,
        builtins: bool = True,
    ) -> PluginHost: ...


class ValisOpenSession(Protocol):
    """The ``valis_session`` fixture."""

    def __call__(
        self,
        chain: Sequence[str] | None = None,
        *,
        persona: Persona | None = None,
        history: Iterable[Message] = (),
        params: GenerationParams | None = None,
        model: str | None = None,
    ) -> Session: ...


class ValisChat(Protocol):
    """The ``valis_chat`` fixture."""

    async def __call__(self, prompt: str, *, chain: Sequence[str] | None = None) -> Reply: ...


class ValisTimeOut(Protocol):
    """The ``valis_time_out`` fixture."""

    async def __call__(self, request: Request) -> Reply: ...


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        INI_PLUGINS,
        type="linelist",
        default=[],
        help="Valis Desktop plugins the valis_* fixtures load: entry point names of installed "
        "plugins, or name=module pairs",
    )


def _async_fixture(function: _F) -> _F:
    """``pytest_asyncio.fixture``, so that the fixture runs in pytest-asyncio's auto and strict
    modes alike; without pytest-asyncio, a fixture that says what to install."""
    try:
        import pytest_asyncio
    except ImportError:
        return cast(_F, pytest.fixture(_needs_pytest_asyncio(function)))
    return cast(_F, pytest_asyncio.fixture(function))


def _needs_pytest_asyncio(function: Callable[..., object]) -> Callable[..., NoReturn]:
    """A plain function standing in for the fixture ``function`` (same name, arguments and
    documentation; not ``functools.wraps``, which pytest would see through)."""

    def missing(*args: object, **kwargs: object) -> NoReturn:
        pytest.fail(
            f"{function.__name__} needs pytest-asyncio: pip install 'pytest-asyncio>=1.0'",
            pytrace=False,
        )

    missing.__name__ = missing.__qualname__ = function.__name__
    missing.__doc__ = function.__doc__
    missing.__signature__ = inspect.signature(function)  # type: ignore[attr-defined]
    return missing


# Configuration: override any of these in a conftest.py or a test module.


@pytest.fixture
def valis_plugins(request: pytest.FixtureRequest) -> tuple[str, ...]:
    """The plugins ``valis_plugin_host`` loads: the ``valis_plugins`` option of the pytest
    configuration. Each is the entry point name of an installed plugin (``pip install -e .``
    installs yours), or ``name=module`` for a module that is not installed as a plugin.
    Override this fixture to load others in some tests."""
    names = tuple(str(name) for name in request.config.getini(INI_PLUGINS))
    if not names:
        pytest.fail(
            "Name the plugins the valis_* fixtures test: add "
            f'{INI_PLUGINS} = ["your-plugin"] to [tool.pytest.ini_options] in pyproject.toml '
            "(the name of your valis_desktop.plugins entry point), or override the "
            f"{INI_PLUGINS} fixture.",
            pytrace=False,
        )
    return names


@pytest.fixture
def valis_settings() -> dict[str, dict[str, Any]]:
    """The settings file's plugin tables: plugin name → its ``[plugins.<name>]`` table, what
    ``context.settings`` and ``context.instances()`` see. Empty unless overridden, e.g.
    ``{"my-plugin": {"instances": [{"id": "a", "url": "http://127.0.0.1:8080"}]}}``."""
    return {}


@pytest.fixture
def valis_secrets() -> dict[str, str]:
    """The keychain: secret name (an instance id) → value, what ``context.secret(name)``
    returns. Empty unless overridden."""
    return {}


@pytest.fixture
def valis_engine_config() -> EngineConfig:
    """The engine's configuration: the application's defaults (60 s timeouts, 10 answers at
    once), without the breakers' random jitter so that their timing is exact."""
    from valis_desktop.core.circuit_breaker import BreakerConfig
    from valis_desktop.core.provider_manager import EngineConfig

    return EngineConfig(breaker=BreakerConfig(jitter=0.0))


# The engine.


@pytest.fixture
def valis_clock() -> ManualClock:
    """The engine's clock: time moves only when the test calls ``valis_clock.advance(seconds)``,
    which runs the timeouts and breaker intervals that fall due."""
    from valis_desktop.core.clock import ManualClock

    return ManualClock()


@pytest.fixture
def valis_load_plugins(
    valis_settings: dict[str, dict[str, Any]], valis_secrets: dict[str, str]
) -> ValisLoadPlugins:
    """Load plugins in strict mode: ``valis_load_plugins("my-plugin", "x=some.module")``
    returns the ``PluginHost``, its plugins loaded (``host.records``), their providers not yet
    registered. A plugin that cannot load raises ``PluginLoadError`` with its error and
    traceback. Each plugin is an entry point name of an installed plugin, ``name=module`` or an
    imported module; the built-in plugins (``fallback``, ``personas``) load too unless
    ``builtins=False``. ``settings`` and ``secrets`` default to ``valis_settings`` and
    ``valis_secrets``."""

    def load(
        *plugins: str | ModuleType,
        settings: Mapping[str, Mapping[str, Any]] | None = None,
        secrets: Mapping[str, str] | None = None,
        builtins: bool = True,
    ) -> PluginHost:
        from importlib.metadata import entry_points

        from valis_desktop.api import ENTRY_POINT_GROUP
        from valis_desktop.core.plugins import PluginHost

        installed = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
        keychain = dict(valis_secrets if secrets is None else secrets)
        host = PluginHost(
            strict=True,
            builtins=None if builtins else {},
            entry_points=[_entry_point(plugin, installed, ENTRY_POINT_GROUP) for plugin in plugins],
            settings=valis_settings if settings is None else settings,
            secrets=lambda plugin, name: keychain.get(name),
        )
        host.load()
        return host

    return load


@pytest.fixture
def valis_plugin_host(
    valis_load_plugins: ValisLoadPlugins, valis_plugins: tuple[str, ...]
) -> PluginHost:
    """The ``PluginHost`` with the built-ins and ``valis_plugins`` loaded in strict mode (see
    ``valis_load_plugins``): a plugin that cannot load fails the test with its error and
    traceback. ``host.records[name]`` tells what a plugin registered, and the configuration
    problems it reported (``problems``); ``host.personas()`` and ``host.settings_forms()``
    call its other hooks."""
    with _failing_on_load_errors():
        return valis_load_plugins(*valis_plugins)


@_async_fixture
async def valis_manager(
    valis_plugin_host: PluginHost, valis_engine_config: EngineConfig, valis_clock: ManualClock
) -> AsyncIterator[ProviderManager]:
    """A ``ProviderManager`` on ``valis_clock`` with ``valis_engine_config``, holding the
    providers of ``valis_plugin_host`` (a plugin whose ``register_providers`` raises or
    registers something invalid fails the test with its error). Closed at teardown: every
    provider's ``aclose()`` is awaited. A provider that raised anything but the API's errors
    while answering (a bug: the application would set its plugin aside) fails the test then,
    with the traceback."""
    from valis_desktop.core.provider_manager import ProviderManager

    manager = ProviderManager(valis_engine_config, clock=valis_clock)
    faults: list[str] = []
    manager.on_plugin_fault = lambda plugin, provider_id, error: faults.append(
        f"provider {provider_id!r} of plugin {plugin!r} raised this while answering; the "
        "application would set the plugin aside. Raise one of valis_desktop.api's errors "
        "(TransientError, RateLimitedError, NeedsAttentionError, InvalidRequestError) "
        "instead:\n" + "".join(traceback.format_exception(error))
    )
    try:
        with _failing_on_load_errors():
            valis_plugin_host.register_providers(manager)
        yield manager
    finally:
        await manager.aclose()
    if faults:
        pytest.fail(faults[0], pytrace=False)


@_async_fixture
async def valis_session(
    valis_manager: ProviderManager, valis_plugin_host: PluginHost
) -> AsyncIterator[ValisOpenSession]:
    """Open chat sessions on ``valis_manager``: ``valis_session(chain=None, *, persona=None,
    history=(), params=None, model=None)`` returns a ``Session``. Without a chain it asks the
    providers of the tested plugins (``valis_plugins``), in the order they registered.
    ``await session.submit("hello")`` gives the final ``Reply``. Every session is closed at
    teardown (queued messages cancelled, the running answer stopped)."""
    from valis_desktop.core.session import Session

    sessions: list[Session] = []

    def open_session(
        chain: Sequence[str] | None = None,
        *,
        persona: Persona | None = None,
        history: Iterable[Message] = (),
        params: GenerationParams | None = None,
        model: str | None = None,
    ) -> Session:
        session = Session(
            valis_manager,
            chain=_tested_providers(valis_plugin_host) if chain is None else chain,
            persona=persona,
            history=history,
            params=params,
            model=model,
        )
        sessions.append(session)
        return session

    try:
        yield open_session
    finally:
        for session in sessions:
            await session.aclose()


@pytest.fixture
def valis_chat(valis_session: ValisOpenSession) -> ValisChat:
    """Send a message and wait for the whole answer: ``reply = await valis_chat("hello")``.

    The ``Reply`` says how it ended (``status``: ``answered``, ``failed``, ``stopped``), the
    ``text``, the provider that wrote it (``provider_id``), the ``error`` shown to the user,
    the ``usage`` and every ``attempts`` along the chain. The messages of one test form one
    conversation (the second sees the first answer in its context), on the chain
    ``valis_session`` uses by default or on ``chain`` for that message. It waits for as long
    as the provider takes: for one that hangs, submit through ``valis_session`` and use
    ``valis_time_out``."""
    opened: list[Session] = []

    async def chat(prompt: str, *, chain: Sequence[str] | None = None) -> Reply:
        if not opened:
            opened.append(valis_session())
        return await opened[0].submit(prompt, chain=chain)

    return chat


@pytest.fixture
def valis_time_out(valis_manager: ProviderManager, valis_clock: ManualClock) -> ValisTimeOut:
    """Drive the clock until a request ends: ``reply = await valis_time_out(request)``.

    Whenever the request is streaming from a provider, time moves past the engine's timeouts
    (first chunk, or the longest pause mid-answer), so a provider that never answers or stops
    half way is timed out as it would be after a minute in the application; the chain then
    moves on (or the request fails). Returns the final ``Reply``. Use it on a request that
    would otherwise wait forever."""

    async def time_out(request: Request) -> Reply:
        from valis_desktop.core.request import Phase

        def streaming(request: Request) -> bool:
            return request.done() or request.phase is Phase.STREAMING

        while not request.done():
            await _until(request, streaming)
            if request.done():
                break
            tried = len(request.attempts)
            config = valis_manager.config
            valis_clock.advance(max(config.first_chunk_timeout, config.gap_timeout) + 1.0)
            # The attempt ends (the chain moves on) or the request does.
            await _until(request, functools.partial(_moved_on, tried=tried))
        return await request

    return time_out


def _entry_point(
    plugin: str | ModuleType, installed: Mapping[str, EntryPoint], group: str
) -> EntryPoint:
    from importlib.metadata import EntryPoint

    if isinstance(plugin, ModuleType):
        return EntryPoint(name=plugin.__name__, value=plugin.__name__, group=group)
    name, equals, value = plugin.partition("=")
    if equals:
        return EntryPoint(name=name.strip(), value=value.strip(), group=group)
    found = installed.get(plugin)
    if found is not None:
        return found
    known = ", ".join(sorted(installed)) or "none"
    raise LookupError(
        f"No installed plugin is named {plugin!r} (entry point group {group}; installed: "
        f"{known}). Install yours with `pip install -e .`, or name a module: "
        f"'{plugin}=package.module'."
    )


@contextlib.contextmanager
def _failing_on_load_errors() -> Iterator[None]:
    """Fail the test with a plugin's error (its traceback included), not the fixture's."""
    from valis_desktop.core.plugins import PluginLoadError

    try:
        yield
    except (PluginLoadError, LookupError) as error:
        pytest.fail(str(error), pytrace=False)


def _tested_providers(host: PluginHost) -> tuple[str, ...]:
    chain = tuple(
        provider
        for record in host.records.values()
        if not record.builtin
        for provider in record.providers
    )
    if not chain:
        raise LookupError(
            "The tested plugins registered no provider: give the session a chain, or check "
            "the plugins' configuration problems (valis_plugin_host.records[name].problems)."
        )
    return chain


def _moved_on(request: Request, *, tried: int) -> bool:
    return request.done() or len(request.attempts) > tried


async def _until(request: Request, ready: Callable[[Request], bool]) -> None:
    """Return once ``ready(request)`` holds, checking after each event of the request."""
    if ready(request):
        return
    woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def listen(event: SessionEvent) -> None:
        if event.request is request and not woken.done() and ready(request):
            woken.set_result(None)

    unsubscribe = request.session.subscribe(listen)
    try:
        await woken
    finally:
        unsubscribe()
