"""Test doubles for the engine and for provider plugins: a scripted provider and a manual clock.

Used by Valis Desktop's own tests and benchmarks; plugin authors may use them too. Nothing here
sleeps for time: a script waits on events that the test sets, and timeouts fire when the test
moves the ``ManualClock`` forward.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from valis_desktop.api import ChatRequest, Provider, StreamItem, Usage
from valis_desktop.core.clock import ManualClock
from valis_desktop.core.request import EventKind, Request, SessionEvent

__all__ = ["ManualClock", "Script", "ScriptedProvider", "first_chunk", "next_chunk"]


@dataclass
class Script:
    """What one call of a ``ScriptedProvider`` does."""

    chunks: Sequence[str] = ("Hello", ", world")
    error: BaseException | None = None
    """Raised after ``error_after`` chunks."""
    error_after: int = 0
    hang_after: int | None = None
    """Wait forever (until cancelled) after this many chunks."""
    gate: asyncio.Event | None = None
    """Wait for this event before the first chunk."""
    between: asyncio.Event | None = None
    """Wait for this event before every chunk after the first (cleared by the waiter)."""
    cooperative: bool = False
    """Yield to the event loop between chunks (``asyncio.sleep(0)``: a turn, not time)."""
    usage: Usage | None = None
    extra: Sequence[object] = ()
    """Items yielded after the chunks (e.g. garbage a broken plugin might send)."""


def echo_script(request: ChatRequest) -> Script:
    """The default: answer "re: <prompt>" in two chunks."""
    return Script(chunks=("re: ", request.prompt))


@dataclass(eq=False)
class ScriptedProvider(Provider):
    """A provider that does what it is told, call by call, and records what it was asked.

    Scripts queued with ``push`` are used in order; when none is queued, ``default`` builds one.
    """

    id: str = "scripted"
    display_name: str = "Scripted"
    default_concurrency: int = 4
    default: Callable[[ChatRequest], Script] = echo_script
    calls: list[ChatRequest] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    """Request ids whose stream ended (completed, failed, stopped or closed)."""
    active: int = 0
    peak: int = 0
    closed: bool = False
    _scripts: deque[Script] = field(default_factory=deque)
    _changed: asyncio.Condition | None = None

    def push(self, *scripts: Script) -> None:
        self._scripts.extend(scripts)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamItem]:
        script = self._scripts.popleft() if self._scripts else self.default(request)
        self.calls.append(request)
        self.active += 1
        self.peak = max(self.peak, self.active)
        await self._notify()
        try:
            if script.gate is not None:
                await script.gate.wait()
            for index, chunk in enumerate(script.chunks):
                if index == script.error_after and script.error is not None:
                    raise script.error
                if index == script.hang_after:
                    await asyncio.Event().wait()
                if index and script.between is not None:
                    await script.between.wait()
                    script.between.clear()
                if index and script.cooperative:
                    await asyncio.sleep(0)
                yield chunk
            if script.error is not None and script.error_after >= len(script.chunks):
                raise script.error
            if script.hang_after is not None and script.hang_after >= len(script.chunks):
                await asyncio.Event().wait()
            for item in script.extra:
                yield item  # type: ignore[misc]
            if script.usage is not None:
                yield script.usage
        finally:
            self.active -= 1
            self.finished.append(request.request_id)

    async def wait_for_calls(self, count: int) -> None:
        """Return once at least ``count`` calls have started."""
        condition = self._condition()
        async with condition:
            await condition.wait_for(lambda: len(self.calls) >= count)

    async def aclose(self) -> None:
        self.closed = True

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    async def _notify(self) -> None:
        condition = self._condition()
        async with condition:
            condition.notify_all()


async def next_chunk(request: Request) -> str:
    """Wait for the next chunk that ``request`` streams."""
    arrived: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def listen(event: SessionEvent) -> None:
        if event.request is request and event.kind is EventKind.CHUNK and not arrived.done():
            arrived.set_result(event.chunk)

    unsubscribe = request.session.subscribe(listen)
    try:
        return await arrived
    finally:
        unsubscribe()


async def first_chunk(request: Request) -> str:
    """The first chunk ``request`` streamed, waiting for it if need be."""
    return request.chunks[0] if request.chunks else await next_chunk(request)
