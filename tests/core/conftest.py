"""Core tests: plain asyncio, no Qt. A test fails if it leaves a task pending."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.asyncio_leaks import no_leaked_tasks  # noqa: F401 - autouse here
from valis_desktop.core.circuit_breaker import BreakerConfig
from valis_desktop.core.clock import ManualClock
from valis_desktop.core.provider_manager import EngineConfig, ProviderManager
from valis_desktop.testing import ScriptedProvider


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
