"""Plugin tests: real HTTP on 127.0.0.1 and real child processes, no mocks.

A test fails if it leaves a task pending or a child process behind (running or unreaped).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from valis_desktop.api import Provider
from valis_desktop.core.circuit_breaker import BreakerConfig
from valis_desktop.core.clock import ManualClock
from valis_desktop.core.provider_manager import EngineConfig, ProviderManager
from valis_desktop.testing import ScriptedProvider

from .engine import TEST_KEY, MakeManager
from .fake_llm_server import FakeLLMServer

_FINALIZER_TURNS = 20


def _finalizing(task: asyncio.Task[object]) -> bool:
    """Whether ``task`` is the event loop closing an async generator that was dropped open."""
    return type(task.get_coro()).__name__ == "async_generator_athrow"


@pytest_asyncio.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fails a test that leaves a task pending.

    The SDKs leave their inner stream generators open when a stream ends early (an error, or
    the ``[DONE]`` that ends every OpenAI answer); the event loop then closes them, one nested
    generator per task. Those tasks may finish within a few turns; nothing else may be left.
    """
    yield
    current = asyncio.current_task()
    for _ in range(_FINALIZER_TURNS):
        await asyncio.sleep(0)  # one turn, so tasks that are finishing can finish
        pending = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        if not all(_finalizing(t) for t in pending) or not pending:
            break
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
        pytest.fail(f"the test left tasks pending: {pending}", pytrace=False)


def child_processes() -> dict[int, str]:
    """This process's children (pid → state letter; "Z" is a zombie nobody reaped), from /proc
    (none found where there is no /proc)."""
    me = os.getpid()
    children: dict[int, str] = {}
    if not Path("/proc/self/stat").exists():
        return children
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # it ended meanwhile
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        if int(ppid) == me:
            children[int(entry)] = state
    return children


@pytest.fixture(autouse=True)
def no_leaked_children() -> Iterator[None]:
    before = set(child_processes())
    yield
    left = {pid: state for pid, state in child_processes().items() if pid not in before}
    if left:
        pytest.fail(f"the test left child processes (pid: state): {left}", pytrace=False)


@pytest_asyncio.fixture
async def llm_server() -> AsyncIterator[FakeLLMServer]:
    """A fault-injecting OpenAI and Anthropic server that requires ``TEST_KEY``."""
    server = FakeLLMServer(key=TEST_KEY)
    await server.start()
    yield server
    await server.close()
    assert server.errors == [], "the test server itself failed"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest_asyncio.fixture
async def make_manager(clock: ManualClock) -> AsyncIterator[MakeManager]:
    """A manager on the manual clock with no breaker jitter, holding the given providers (a
    ``fallback`` scripted provider is always there); every manager is closed afterwards."""
    managers: list[ProviderManager] = []

    def make(*providers: Provider, **config: object) -> ProviderManager:
        config.setdefault("breaker", BreakerConfig(jitter=0.0))
        manager = ProviderManager(EngineConfig(**config), clock=clock)  # type: ignore[arg-type]
        for provider in (*providers, ScriptedProvider(id="fallback")):
            manager.add_provider(provider, plugin=f"test-{provider.id}")
        managers.append(manager)
        return manager

    yield make
    for manager in managers:
        await manager.aclose()
