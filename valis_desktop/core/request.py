"""A request in a session's queue: the handle ``Session.submit`` returns.

The handle is also the engine's record of the request in flight: the provider manager writes the
provider, phase, chunks and timings into it, and the status panel reads them back.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from valis_desktop.api import Usage

if TYPE_CHECKING:
    from valis_desktop.core.session import Session


class Status(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    ANSWERED = "answered"
    FAILED = "failed"
    STOPPED = "stopped"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self not in (Status.QUEUED, Status.RUNNING)


class Phase(enum.StrEnum):
    QUEUED = "queued"
    WAITING = "waiting for a slot"
    STREAMING = "streaming"
    DONE = "done"


class Attempt(NamedTuple):
    """What happened at one provider of the chain."""

    provider_id: str
    outcome: str
    message: str = ""


class Reply(NamedTuple):
    """The final state of a request."""

    request_id: str
    session_id: str
    prompt: str
    status: Status
    text: str
    provider_id: str | None
    error: str
    attempts: tuple[Attempt, ...]
    usage: Usage | None
    first_chunk_seconds: float | None
    duration_seconds: float | None

    @property
    def chars_per_second(self) -> float | None:
        if self.first_chunk_seconds is None or self.duration_seconds is None:
            return None
        streaming = self.duration_seconds - self.first_chunk_seconds
        return len(self.text) / streaming if streaming > 0 else None


class EventKind(enum.Enum):
    QUEUED = "queued"
    STARTED = "started"
    PHASE = "phase"
    CHUNK = "chunk"
    FINISHED = "finished"


@dataclass(frozen=True, slots=True)
class SessionEvent:
    kind: EventKind
    request: Request
    chunk: str = ""


class Request:
    """One user message and the answer to it."""

    __slots__ = (
        "_future",
        "attempts",
        "chain",
        "chars",
        "chunks",
        "error",
        "finished_at",
        "first_chunk_at",
        "id",
        "left_out",
        "phase",
        "progress",
        "prompt",
        "provider_id",
        "session",
        "started_at",
        "status",
        "submitted_at",
        "usage",
    )

    def __init__(
        self, session: Session, request_id: str, prompt: str, chain: tuple[str, ...], now: float
    ) -> None:
        self.id = request_id
        self.session = session
        self.prompt = prompt
        self.chain = chain
        """The provider chain chosen for this request alone; empty: the session's."""
        self.status = Status.QUEUED
        self.phase = Phase.QUEUED
        self.provider_id: str | None = None
        self.progress = ""
        """The provider's latest ``Progress`` note before text arrives ("loading model…")."""
        self.chunks: list[str] = []
        self.chars = 0
        self.usage: Usage | None = None
        self.left_out = 0
        """Earlier messages of the conversation left out of the context sent to the latest
        provider asked (to fit its context)."""
        self.attempts: list[Attempt] = []
        self.error = ""
        self.submitted_at = now
        self.started_at: float | None = None
        self.first_chunk_at: float | None = None
        self.finished_at: float | None = None
        self._future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()

    def __repr__(self) -> str:
        return f"<Request {self.id} {self.status} {self.prompt[:30]!r}>"

    @property
    def session_id(self) -> str:
        return self.session.id

    @property
    def text(self) -> str:
        """The answer so far."""
        return "".join(self.chunks)

    def cancel(self) -> None:
        """Cancel the request if queued (no provider ever sees it), or stop it if running
        (the partial answer is kept). Does nothing once it has finished."""
        self.session._cancel(self)

    def done(self) -> bool:
        return self._future.done()

    def result(self) -> Reply:
        """The final reply of a request that is done (``InvalidStateError`` before)."""
        return self._future.result()

    def reply(self) -> asyncio.Future[Reply]:
        """The final reply, to await. Giving up the wait (being cancelled) leaves the request
        running: only ``cancel()`` cancels it."""
        return asyncio.shield(self._future)

    def __await__(self) -> Generator[Any, None, Reply]:
        return self.reply().__await__()

    async def stream(self) -> AsyncIterator[str]:
        """The answer's chunks (those already received first), ending when it is final."""
        queue: asyncio.Queue[str | None] = asyncio.Queue()

        def forward(event: SessionEvent) -> None:
            if event.request is self:
                if event.kind is EventKind.CHUNK:
                    queue.put_nowait(event.chunk)
                elif event.kind is EventKind.FINISHED:
                    queue.put_nowait(None)

        for chunk in self.chunks:
            queue.put_nowait(chunk)
        if self.done():
            queue.put_nowait(None)
        unsubscribe = self.session.subscribe(forward)
        try:
            while (item := await queue.get()) is not None:
                yield item
        finally:
            unsubscribe()

    def add_done_callback(self, callback: Callable[[Reply], None]) -> None:
        self._future.add_done_callback(lambda future: callback(future.result()))

    # Written by the engine only.

    def _set_phase(self, phase: Phase, provider_id: str | None) -> None:
        self.phase = phase
        self.provider_id = provider_id
        self.progress = ""
        self.session._emit(EventKind.PHASE, self)

    def _set_progress(self, message: str) -> None:
        self.progress = message
        self.session._emit(EventKind.PHASE, self)

    def _add_chunk(self, chunk: str, first_chunk_at: float) -> None:
        self.first_chunk_at = first_chunk_at
        self.chunks.append(chunk)
        self.chars += len(chunk)
        self.session._emit(EventKind.CHUNK, self, chunk)

    def _finish(self, status: Status, error: str, now: float) -> Reply:
        self.status = status
        self.phase = Phase.DONE
        self.progress = ""
        self.error = error
        self.finished_at = now
        if self.chunks:
            self.chunks = [self.text]
        reply = Reply(
            request_id=self.id,
            session_id=self.session.id,
            prompt=self.prompt,
            status=status,
            text=self.chunks[0] if self.chunks else "",
            provider_id=self.provider_id if self.chunks or status is Status.ANSWERED else None,
            error=error,
            attempts=tuple(self.attempts),
            usage=self.usage,
            first_chunk_seconds=_since(self.started_at, self.first_chunk_at),
            duration_seconds=_since(self.started_at, now),
        )
        self._future.set_result(reply)
        self.session._emit(EventKind.FINISHED, self)
        return reply


def _since(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else end - start
