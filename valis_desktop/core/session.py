"""A chat session: one tab's conversation and its serialized request queue.

Requests run strictly one after another in submission order; request k+1 starts when k has ended
and sees k's final text in its context. The worker task exists only while there is work.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence

from valis_desktop.api import ChatRequest, GenerationParams, Message, Persona, Provider, Role
from valis_desktop.core.context import History, fit_messages, prompt_budget
from valis_desktop.core.provider_manager import ProviderManager
from valis_desktop.core.request import EventKind, Request, SessionEvent, Status

log = logging.getLogger(__name__)

DEFAULT_MAX_QUEUE = 32

SessionListener = Callable[[SessionEvent], None]

_request_numbers = itertools.count(1)
_RUN = secrets.token_hex(3)
"""Request ids are ``<session>/<run><n>``: unique even for a session restored in a later run."""


class QueueFull(Exception):
    """The session already holds as many waiting messages as it may."""


class SessionClosed(Exception):
    """The session was closed; it takes no more messages."""


class Session:
    def __init__(
        self,
        manager: ProviderManager,
        *,
        chain: Sequence[str],
        persona: Persona | None = None,
        session_id: str | None = None,
        history: Iterable[Message] = (),
        max_queue: int = DEFAULT_MAX_QUEUE,
        model: str | None = None,
        params: GenerationParams | None = None,
    ) -> None:
        self.id = session_id or uuid.uuid4().hex
        self.chain: tuple[str, ...] = tuple(chain)
        self.persona = persona
        self.model = model
        self.params = params
        """Sampling parameters for this chat; ``None`` uses the persona's (if it has any)."""
        self.max_queue = max_queue
        self.history = History(history)
        """Finished turns, oldest first: what the next request's context is built from."""
        self._manager = manager
        self._queue: deque[Request] = deque()
        self._running: Request | None = None
        self._stopping: Request | None = None
        self._worker: asyncio.Task[None] | None = None
        self._listeners: list[SessionListener] = []
        self._closed = False

    def __repr__(self) -> str:
        return f"<Session {self.id} queued={len(self._queue)} running={self._running}>"

    @property
    def running(self) -> Request | None:
        return self._running

    @property
    def queued(self) -> tuple[Request, ...]:
        return tuple(self._queue)

    @property
    def busy(self) -> bool:
        return self._running is not None or bool(self._queue)

    @property
    def closed(self) -> bool:
        return self._closed

    def submit(self, prompt: str, *, chain: Sequence[str] | None = None) -> Request:
        """Queue a message and return its handle at once.

        ``chain`` overrides the session's provider chain for this request only (for "retry with
        the next provider"); otherwise the chain the session has when the request starts is
        used. Raises ``QueueFull`` or ``SessionClosed``.
        """
        self.check(prompt)
        request = Request(
            self,
            f"{self.id}/{_RUN}{next(_request_numbers)}",
            prompt,
            () if chain is None else tuple(chain),
            self._manager.clock.now(),
        )
        self._queue.append(request)
        self._manager.track(request)
        self._emit(EventKind.QUEUED, request)
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(
                self._work(), name=f"session {self.id}"
            )
        return request

    def check(self, prompt: str) -> None:
        """Raise what ``submit(prompt)`` would raise now, without queueing anything."""
        if self._closed:
            raise SessionClosed("This chat is closed.")
        if not prompt.strip():
            raise ValueError("An empty message cannot be sent.")
        if len(self._queue) >= self.max_queue:
            raise QueueFull(
                f"{len(self._queue)} messages are already waiting in this chat. "
                "Wait for an answer or cancel a queued message, then send again."
            )

    def stop(self) -> None:
        """Stop the running answer, if any; queued messages then proceed."""
        if self._running is not None:
            self._cancel(self._running)

    def subscribe(self, listener: SessionListener) -> Callable[[], None]:
        """Call ``listener`` for every event of this session's requests (queued, started,
        phase, chunk, finished); returns a function that unsubscribes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    async def aclose(self) -> None:
        """Cancel queued messages, stop the running one and wait until the worker is gone."""
        self._closed = True
        while self._queue:
            self._conclude(self._queue.popleft(), Status.CANCELLED, "The chat was closed.")
        worker = self._worker
        if worker is not None:
            worker.cancel()
            await asyncio.wait([worker])

    def _cancel(self, request: Request) -> None:
        if request.status is Status.QUEUED:
            self._queue.remove(request)
            self._conclude(request, Status.CANCELLED, "")
        elif request is self._running and self._stopping is None:
            assert self._worker is not None
            self._stopping = request
            self._worker.cancel()

    async def _work(self) -> None:
        try:
            while self._queue:
                await self._execute(self._queue.popleft())
        finally:
            self._worker = None

    async def _execute(self, request: Request) -> None:
        self._running = request
        request.status = Status.RUNNING
        request.started_at = self._manager.clock.now()
        self._emit(EventKind.STARTED, request)
        user_message = Message(role=Role.USER, content=request.prompt)
        # What the request starts with holds for all its attempts: a persona chosen meanwhile
        # applies from the next request on.
        persona = self.persona
        # The history changes only when a request concludes, after its last attempt.
        history = self.history
        params = self.params or (persona.params if persona is not None else None)
        params = params or GenerationParams()

        def build(provider: Provider) -> ChatRequest:
            budget = prompt_budget(provider, params.max_tokens)
            messages, request.left_out = fit_messages(persona, history, user_message, budget)
            # Trusted parts, already validated: construct rather than validate every message.
            return ChatRequest.model_construct(
                request_id=request.id,
                session_id=self.id,
                messages=messages,
                persona=persona,
                model=self.model,
                params=params,
            )

        try:
            chain = request.chain or self.chain
            status, error = await self._manager.run(request, build, chain)
        except asyncio.CancelledError:
            if self._closed or self._stopping is not request:
                self._conclude(
                    request, Status.STOPPED, "The chat was closed while answering.", user_message
                )
                raise
            status, error = Status.STOPPED, ""
        if self._stopping is request:
            # The stop was ours, not a cancellation of the worker: take it back.
            self._stopping = None
            task = asyncio.current_task()
            assert task is not None
            task.uncancel()
        self._conclude(request, status, error, user_message)

    def _conclude(
        self, request: Request, status: Status, error: str, user_message: Message | None = None
    ) -> None:
        """Record the final state. Turns with text (answered, or stopped or failed part way)
        enter the history; a turn that produced nothing does not."""
        if request is self._running:
            self._running = None
        if request.chunks and user_message is not None:
            self.history.append(user_message)
            self.history.append(Message(role=Role.ASSISTANT, content="".join(request.chunks)))
        request._finish(status, error, self._manager.clock.now())
        self._manager.untrack(request)

    def _emit(self, kind: EventKind, request: Request, chunk: str = "") -> None:
        if self._listeners:
            event = SessionEvent(kind, request, chunk)
            for listener in tuple(self._listeners):
                try:
                    listener(event)
                except Exception:
                    log.exception("a listener of session %s failed on %s", self.id, kind.value)
