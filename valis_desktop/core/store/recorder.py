"""The recorder follows sessions and writes what happens in them to the store.

- ``await recorder.submit(session, text)`` commits the user's message (synced to disk) and only
  then queues it in the session: no provider can see a message that is not on disk yet.
- A streaming answer is checkpointed at most ``interval`` seconds after any chunk (default
  1 s): chunks accumulate in the request, and one timer writes every answer that changed since
  the last checkpoint in one transaction. Never one write per chunk.
- The end of every request (answered, failed, stopped, cancelled) is written at once.

The recorder listens to session events synchronously and only queues writes, so it adds no
await to the engine's path and cannot reorder anything: the store runs the writes in the order
the events happened.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from valis_desktop.core.clock import Clock, MonotonicClock, Timer
from valis_desktop.core.request import EventKind, Request, SessionEvent, Status
from valis_desktop.core.session import Session
from valis_desktop.core.store import queries
from valis_desktop.core.store.records import MessageStatus, new_id
from valis_desktop.core.store.store import Store

DEFAULT_INTERVAL = 1.0

_FINAL = {
    Status.ANSWERED: MessageStatus.ANSWERED,
    Status.FAILED: MessageStatus.FAILED,
    Status.STOPPED: MessageStatus.STOPPED,
    Status.CANCELLED: MessageStatus.CANCELLED,
}


@dataclass(slots=True, eq=False)
class _Turn:
    """A request being recorded: its user message and, once it started, its answer."""

    session: Session
    user_id: str
    answer_id: str | None = None


class Recorder:
    """Writes the sessions it follows into ``store``.

    ``clock`` schedules checkpoints (a ``ManualClock`` in tests); ``interval`` is the longest
    a streamed chunk waits in memory before it is written.
    """

    def __init__(
        self, store: Store, *, clock: Clock | None = None, interval: float = DEFAULT_INTERVAL
    ) -> None:
        self.store = store
        self.interval = interval
        self._clock: Clock = clock or MonotonicClock()
        self._followed: dict[Session, Callable[[], None]] = {}
        self._locks: dict[Session, asyncio.Lock] = {}
        self._turns: dict[Request, _Turn] = {}
        self._dirty: dict[Request, _Turn] = {}
        self._timer: Timer | None = None
        self._claim: tuple[Session, str] | None = None

    def follow(self, session: Session, *, tab_position: int | None = None) -> asyncio.Future[None]:
        """Record ``session`` from now on, as the conversation with the session's id.

        A new conversation is created with the session's persona and chain and
        ``tab_position``; an existing one (a restored tab) is left as it is. The returned
        future resolves when the conversation is written; awaiting it is optional.
        """
        if session in self._followed:
            raise ValueError(f"session {session.id} is followed already")
        self._followed[session] = session.subscribe(partial(self._on_event, session))
        self._locks[session] = asyncio.Lock()
        persona_id = None if session.persona is None else session.persona.id
        return self.store._write(
            partial(
                queries.ensure_conversation,
                conversation_id=session.id,
                persona_id=persona_id,
                chain=session.chain,
                tab_position=tab_position,
                now_ms=self.store.now_ms(),
            )
        )

    async def submit(
        self, session: Session, prompt: str, *, chain: Sequence[str] | None = None
    ) -> Request:
        """Commit ``prompt`` as the next user message of ``session``, then queue it there.

        Returns the request, as ``Session.submit`` does, and raises what it raises (the message
        is then withdrawn from the store). If the message cannot be written, ``StoreError`` or
        ``sqlite3.Error`` is raised and nothing is sent.
        """
        async with self._lock(session):
            message_id = new_id()
            await self.store._write(
                partial(
                    queries.add_user_message,
                    conversation_id=session.id,
                    message_id=message_id,
                    text=prompt,
                    now_ms=self.store.now_ms(),
                ),
                durable=True,
            )
            withdraw = partial(queries.withdraw_user_message, message_id=message_id)
            return self._hand_over(session, message_id, prompt, chain, withdraw)

    async def resend(
        self, session: Session, message_id: str, *, chain: Sequence[str] | None = None
    ) -> Request:
        """Send again a message that was never sent (``not sent`` or ``cancelled``): it becomes
        the newest message of the conversation, pending, and is queued in ``session``."""
        async with self._lock(session):
            prompt: str = await self.store._write(
                partial(
                    queries.requeue_user_message,
                    conversation_id=session.id,
                    message_id=message_id,
                    now_ms=self.store.now_ms(),
                ),
                durable=True,
            )
            not_sent = partial(
                queries.finish_message,
                message_id=message_id,
                values={"status": MessageStatus.NOT_SENT.value},
                now_ms=self.store.now_ms(),
            )
            return self._hand_over(session, message_id, prompt, chain, not_sent)

    def ids(self, request: Request) -> tuple[str, str | None] | None:
        """The stored ids of a request in progress: (its user message, its answer or ``None``
        before it starts); ``None`` if the request is not being recorded."""
        turn = self._turns.get(request)
        return None if turn is None else (turn.user_id, turn.answer_id)

    def checkpoint(self) -> asyncio.Future[None]:
        """Write every streaming answer's text now (e.g. before the system suspends)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        answers = [
            (request.text, request.provider_id, _first_chunk_seconds(request), turn.answer_id)
            for request, turn in self._dirty.items()
            if turn.answer_id is not None
        ]
        self._dirty.clear()
        return self.store._write(partial(queries.checkpoint, answers=answers))

    def forget(self, session: Session) -> asyncio.Future[None]:
        """Stop recording ``session``, after checkpointing its answer in progress.

        What is still unfinished stays as it is on disk (streaming, pending) and becomes
        interrupted or not sent at the next ``Store.recover``.
        """
        unsubscribe = self._followed.pop(session)
        unsubscribe()
        del self._locks[session]
        done = self.checkpoint()
        for request in [r for r, turn in self._turns.items() if turn.session is session]:
            del self._turns[request]
        return done

    async def aclose(self) -> None:
        """Forget every session and wait until the last checkpoint is written.

        At quitting time, call this before closing the sessions: answers in progress and
        messages still queued are then kept as they are, and are offered again (interrupted,
        not sent) at the next start, instead of being recorded as stopped and cancelled.
        """
        for session in list(self._followed):
            self.forget(session)
        await self.checkpoint()

    # Session events

    def _lock(self, session: Session) -> asyncio.Lock:
        lock = self._locks.get(session)
        if lock is None:
            raise ValueError(f"session {session.id} is not followed: call follow() first")
        return lock

    def _hand_over(
        self,
        session: Session,
        message_id: str,
        prompt: str,
        chain: Sequence[str] | None,
        refused: Callable[[sqlite3.Connection], None],
    ) -> Request:
        """Queue the written message in the session; if it refuses, ``refused`` undoes it."""
        self._claim = (session, message_id)
        try:
            return session.submit(prompt, chain=chain)
        except BaseException:
            self.store._write(refused)
            raise
        finally:
            self._claim = None

    def _on_event(self, session: Session, event: SessionEvent) -> None:
        request = event.request
        kind = event.kind
        if kind is EventKind.CHUNK:
            turn = self._turns.get(request)
            if turn is not None and request not in self._dirty:
                self._dirty[request] = turn
                if self._timer is None:
                    self._timer = self._clock.call_later(self.interval, self._tick)
        elif kind is EventKind.QUEUED:
            self._queued(session, request)
        elif kind is EventKind.STARTED:
            self._started(session, request)
        elif kind is EventKind.FINISHED:
            self._finished(request)

    def _queued(self, session: Session, request: Request) -> None:
        claim = self._claim
        if claim is not None and claim[0] is session:
            self._turns[request] = _Turn(session, claim[1])
            return
        # Submitted to the session directly: recorded, without the write-ahead guarantee.
        turn = self._turns[request] = _Turn(session, new_id())
        self.store._write(
            partial(
                queries.add_user_message,
                conversation_id=session.id,
                message_id=turn.user_id,
                text=request.prompt,
                now_ms=self.store.now_ms(),
            )
        )

    def _started(self, session: Session, request: Request) -> None:
        turn = self._turns.get(request)
        if turn is None:
            return
        turn.answer_id = new_id()
        self.store._write(
            partial(
                queries.start_answer,
                user_id=turn.user_id,
                answer_id=turn.answer_id,
                persona_id=None if session.persona is None else session.persona.id,
                chain=session.chain,
                now_ms=self.store.now_ms(),
            )
        )

    def _finished(self, request: Request) -> None:
        turn = self._turns.pop(request, None)
        self._dirty.pop(request, None)
        if turn is None:
            return
        reply = request.result()
        if turn.answer_id is None:
            message_id = turn.user_id
            values: dict[str, object] = {"status": _FINAL[reply.status].value, "error": reply.error}
        else:
            message_id = turn.answer_id
            usage = reply.usage
            values = {
                "status": _FINAL[reply.status].value,
                "text": reply.text,
                "provider_id": reply.provider_id,
                "error": reply.error,
                "first_chunk_seconds": reply.first_chunk_seconds,
                "chars_per_second": reply.chars_per_second,
                "prompt_tokens": None if usage is None else usage.prompt_tokens,
                "completion_tokens": None if usage is None else usage.completion_tokens,
            }
        self.store._write(
            partial(
                queries.finish_message,
                message_id=message_id,
                values=values,
                now_ms=self.store.now_ms(),
            )
        )

    def _tick(self) -> None:
        self._timer = None
        if self._dirty:
            self.checkpoint()


def _first_chunk_seconds(request: Request) -> float | None:
    if request.started_at is None or request.first_chunk_at is None:
        return None
    return request.first_chunk_at - request.started_at
