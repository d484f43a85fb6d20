"""Core tests: plain asyncio, no Qt. A test fails if it leaves a task pending."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio

from valis_desktop.core.circuit_breaker import BreakerConfig
from valis_desktop.core.clock import ManualClock
from valis_desktop.core.provider_manager import EngineConfig, ProviderManager
from valis_desktop.testing import ScriptedProvider


@pytest_asyncio.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    yield
    await asyncio.sleep(0)  # one turn, so tasks that are finishing can finish
    current = asyncio.current_task()
    leaked = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    for task in leaked:
        task.cancel()
    if leaked:
        await asyncio.wait(leaked)
        pytest.fail(f"the test left tasks pending: {leaked}", pytrace=False)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def make_manager(clock: ManualClock) -> Callable[..., ProviderManager]:
    """A manager on the manual clock with no breaker jitter, holding the given providers."""

    def make(*providers: ScriptedProvider, **config: object) -> ProviderManager:
        config.setdefault("breaker", BreakerConfig(jitter=0.0))
        manager = ProviderManager(EngineConfig(**config), clock=clock)  # type: ignore[arg-type]
        for provider in providers:
            manager.add_provider(provider, plugin=f"test-{provider.id}")
        return manager

    return make
