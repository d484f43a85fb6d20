"""What the store gives back: plain, immutable records, and the history a session resumes with."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from valis_desktop.api import Message, Role


class MessageStatus(enum.StrEnum):
    """Where a stored message stands. The first four are a user's message, the rest an answer."""

    PENDING = "pending"
    """Written, waiting in the session's queue; no provider has seen it yet."""
    SENT = "sent"
    """Handed to the provider chain; its answer is the next message."""
    NOT_SENT = "not sent"
    """Was pending when the app stopped: never sent. Kept, so the user can send it."""
    CANCELLED = "cancelled"
    """Cancelled while queued (or its chat was closed): never sent."""
    STREAMING = "streaming"
    """An answer in progress; its text is the last checkpoint."""
    ANSWERED = "answered"
    FAILED = "failed"
    """Ended by an error; the text is what arrived before it (often nothing)."""
    STOPPED = "stopped"
    """Stopped by the user; the text is what arrived before."""
    INTERRUPTED = "interrupted"
    """Was streaming when the app stopped; the text is the last checkpoint."""


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One message of a conversation.

    For the chat view: ``HistoryItem(m.id, m.role, m.text, m.status, m.provider_id,
    m.first_chunk_seconds, m.chars_per_second, m.error)``.
    """

    id: str
    conversation_id: str
    seq: int
    """Orders the messages of a conversation (gaps are normal)."""
    role: Role
    text: str
    status: MessageStatus
    provider_id: str | None
    """The provider that produced an answer's text (``None`` for a user's message)."""
    error: str
    created_at: datetime
    finished_at: datetime | None
    first_chunk_seconds: float | None
    chars_per_second: float | None
    prompt_tokens: int | None
    completion_tokens: int | None


@dataclass(frozen=True, slots=True)
class Conversation:
    """A conversation's own fields: what a tab needs to be restored."""

    id: str
    """Also the id of the ``Session`` that records it."""
    title: str
    """Empty until the user or the app names it."""
    persona_id: str | None
    chain: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    tab_position: int | None
    """Its place among the open tabs (0 first); ``None`` when its tab is closed."""
    draft: str


@dataclass(frozen=True, slots=True)
class ConversationSummary:
    """A row of the History view."""

    id: str
    title: str
    first_line: str
    """The first line of the first user message (shortened), for untitled conversations."""
    created_at: datetime
    updated_at: datetime
    tab_position: int | None
    message_count: int


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A message that matches a search, best first."""

    conversation_id: str
    conversation_title: str
    message_id: str
    role: Role
    created_at: datetime
    parts: tuple[tuple[str, bool], ...]
    """The snippet as (text, is_match) pieces, for the UI to emphasize the matches."""

    def marked(self, start: str = "[", end: str = "]") -> str:
        """The snippet with every match between ``start`` and ``end``."""
        return "".join(f"{start}{text}{end}" if match else text for text, match in self.parts)


@dataclass(frozen=True, slots=True)
class Recovery:
    """What ``Store.recover`` found left over from a previous run."""

    interrupted: int
    """Answers that were streaming; now ``interrupted``, their text kept."""
    not_sent: int
    """User messages that were queued; now ``not sent``."""


def history_from(messages: Iterable[StoredMessage]) -> list[Message]:
    """The history a ``Session`` resumes with, by the engine's rule: a turn whose answer has text
    (answered, or stopped, failed or interrupted part way) enters the history as the question
    then the answer; a turn that produced nothing does not."""
    history: list[Message] = []
    question: StoredMessage | None = None
    for message in messages:
        if message.role is Role.USER:
            question = message
        elif message.role is Role.ASSISTANT and question is not None:
            if message.text:
                history.append(Message(role=Role.USER, content=question.text))
                history.append(Message(role=Role.ASSISTANT, content=message.text))
            question = None
    return history


def new_id() -> str:
    """A fresh, globally unique id for a conversation or a message."""
    return uuid.uuid4().hex


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def from_ms(ms: int) -> datetime:
    """The moment ``ms`` milliseconds after the Unix epoch, in UTC (exact, no float)."""
    return _EPOCH + timedelta(milliseconds=ms)


def to_ms(moment: datetime) -> int:
    """Milliseconds since the Unix epoch of an aware datetime (rounded to the millisecond)."""
    return round((moment - _EPOCH) / timedelta(milliseconds=1))
