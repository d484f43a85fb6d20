"""Driving providers through the real engine, as the application does."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from valis_desktop.core.provider_manager import ProviderManager
from valis_desktop.core.request import Reply, Request, SessionEvent
from valis_desktop.core.session import Session

TEST_KEY = "sk-test-0123456789abcdef-SECRET"
"""The key the test server requires; no log or error may ever show it."""

MakeManager = Callable[..., ProviderManager]


async def answer(manager: ProviderManager, chain: list[str], prompt: str = "hello") -> Reply:
    """Ask once, in a session of its own, and return the final reply."""
    session = Session(manager, chain=chain)
    reply = await session.submit(prompt)
    await session.aclose()
    return reply


async def chunks_arrived(request: Request, count: int = 1) -> None:
    """Wait until ``request`` has streamed ``count`` chunks."""
    arrived = asyncio.get_running_loop().create_future()

    def listen(event: SessionEvent) -> None:
        if event.request is request and len(request.chunks) >= count and not arrived.done():
            arrived.set_result(None)

    unsubscribe = request.session.subscribe(listen)
    try:
        if len(request.chunks) < count:
            await arrived
    finally:
        unsubscribe()
