"""Context assembly: the messages a provider receives for one request of a session.

The budget is counted in estimated tokens: about four characters per token, plus a few tokens
of framing per message. That is close enough for English and code with the tokenizers of common
models, and it errs on the generous side for other scripts; a provider with an exact tokenizer
still makes the final decision (it may refuse a request that is too long).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from typing import overload

from valis_desktop.api import Message, Persona, Provider, Role

DEFAULT_CONTEXT_TOKENS = 8_000
"""The context budget of a provider that does not declare ``context_tokens``."""

ANSWER_TOKENS = 1_024
"""Room kept for the answer when the request does not set ``max_tokens``; at most a quarter of
the provider's context."""

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4
"""Role markers and separators that chat templates add around every message."""


def estimate_tokens(message: Message) -> int:
    """The estimated size of ``message`` in tokens (see the module's docstring)."""
    return MESSAGE_OVERHEAD_TOKENS + -(-len(message.content) // CHARS_PER_TOKEN)


def prompt_budget(provider: Provider, max_tokens: int | None = None) -> int:
    """The tokens a request to ``provider`` may spend on its messages: the provider's context
    (or ``DEFAULT_CONTEXT_TOKENS``) less the room kept for the answer (``max_tokens`` if the
    request sets it, else ``ANSWER_TOKENS``, at most a quarter of the context)."""
    context = provider.context_tokens or DEFAULT_CONTEXT_TOKENS
    answer = max_tokens if max_tokens is not None else min(ANSWER_TOKENS, context // 4)
    return max(0, context - answer)


def left_out_note(count: int) -> Message:
    """The system note that marks where ``count`` earlier messages were left out."""
    return Message(
        role=Role.SYSTEM,
        content=(
            f"({count} earlier messages of this conversation were left out to fit the model's "
            "context.)"
        ),
    )


class History(Sequence[Message]):
    """A conversation's messages, oldest first, that keeps their estimated sizes as they are
    added: fitting a request into a budget then costs a binary search, not a pass over every
    message (a long chat would otherwise pay for its whole history on every request)."""

    __slots__ = ("_ends", "_messages", "_turns")

    def __init__(self, messages: Iterable[Message] = ()) -> None:
        self._messages: list[Message] = []
        self._ends: list[int] = [0]
        """``_ends[i]``: the estimated tokens of the first ``i`` messages."""
        self._turns: list[int] = []
        """Where each turn starts: at every user message (and at the first message)."""
        for message in messages:
            self.append(message)

    def append(self, message: Message) -> None:
        if message.role is Role.USER or not self._messages:
            self._turns.append(len(self._messages))
        self._messages.append(message)
        self._ends.append(self._ends[-1] + estimate_tokens(message))

    def __len__(self) -> int:
        return len(self._messages)

    def __iter__(self) -> Iterator[Message]:
        return iter(self._messages)

    @overload
    def __getitem__(self, index: int) -> Message: ...
    @overload
    def __getitem__(self, index: slice) -> list[Message]: ...
    def __getitem__(self, index: int | slice) -> Message | list[Message]:
        return self._messages[index]

    def __eq__(self, other: object) -> bool:
        """Equal to another history or a list with the same messages."""
        if isinstance(other, History):
            return self._messages == other._messages
        if isinstance(other, list):
            return self._messages == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"History({self._messages!r})"

    def fit(self, room: int) -> tuple[int, int]:
        """Where the newest whole turns that fit in ``room`` tokens start, and their size: the
        start is 0 if everything fits, ``len(self)`` if not even the newest turn does."""
        total = self._ends[-1]
        if total <= room:
            return 0, total
        ends, turns = self._ends, self._turns
        # The first turn from which the rest fits; sizes shrink as the start moves on.
        kept = bisect_left(turns, True, key=lambda start: total - ends[start] <= room)
        return self._turn_start(kept), total - ends[self._turn_start(kept)]

    def drop_turn(self, start: int) -> tuple[int, int]:
        """The start and size of what is left after dropping the turn that begins at
        ``start`` (one of ``fit``'s starts)."""
        kept = bisect_left(self._turns, start) + 1
        new_start = self._turn_start(kept)
        return new_start, self._ends[-1] - self._ends[new_start]

    def _turn_start(self, turn: int) -> int:
        return self._turns[turn] if turn < len(self._turns) else len(self._messages)


def build_messages(
    persona: Persona | None,
    history: Sequence[Message],
    user: Message,
    budget_tokens: int | None = None,
) -> tuple[Message, ...]:
    """The messages of one request: the persona's system prompt first (if it has one), then the
    session's own history, oldest first, then the new user message.

    With ``budget_tokens``, the history is trimmed to fit: whole turns (a user message and the
    answer to it) are dropped, oldest first, and a system note right after the system prompt
    says how many messages were left out. The system prompt and the new message are always
    sent, even if together they exceed the budget: the provider then decides. Pass a
    ``History`` (a session's is one) to fit without measuring every message again.
    """
    return fit_messages(persona, history, user, budget_tokens)[0]


def fit_messages(
    persona: Persona | None,
    history: Sequence[Message],
    user: Message,
    budget_tokens: int | None = None,
) -> tuple[tuple[Message, ...], int]:
    """``build_messages``, and how many messages of ``history`` it left out."""
    head: tuple[Message, ...] = ()
    if persona is not None and persona.system_prompt:
        head = (Message(role=Role.SYSTEM, content=persona.system_prompt),)
    if budget_tokens is None:
        return (*head, *history, user), 0
    measured = history if isinstance(history, History) else History(history)
    room = budget_tokens - sum(map(estimate_tokens, (*head, user)))
    start, used = measured.fit(room)
    if start == 0:
        return (*head, *measured, user), 0
    # The note takes room too: leave out more turns until it fits alongside.
    note = left_out_note(len(measured))  # as many digits as the real count may have, or more
    while start < len(measured) and used + estimate_tokens(note) > room:
        start, used = measured.drop_turn(start)
    return (*head, left_out_note(start), *measured[start:], user), start
