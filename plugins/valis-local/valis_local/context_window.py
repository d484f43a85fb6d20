"""Fitting a conversation into the model's context: the system prompt and the newest message
always, then as many of the most recent turns as the prompt budget allows, each turn whole.

A conversation that grows long never fails: its oldest turns are left out. Only a single message
(with the system prompt) too long for the context is an error, and one the user can act on.

Where the kept part starts is kept from one request of a chat to the next while it fits: the
engine then finds the start of the prompt in its cache and reads only what is new. When it no
longer fits, older turns are cut down to ``Budget.refit_tokens`` rather than to the full budget,
so that the next few turns fit again without moving the start (measured on two cores with the
embedded model: reading a full 512-token prompt anew costs about 1.4 s a turn, reading only the
new turn about 0.15 s).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from valis_desktop.api import InvalidRequestError, Message, Role


class PromptTooLong(InvalidRequestError):
    """The newest message (with the system prompt) alone does not fit the model's context."""


@dataclass(frozen=True, slots=True)
class Budget:
    prompt_tokens: int
    """Older turns are sent only while the whole prompt stays within this many tokens."""
    hard_limit: int
    """The system prompt and the newest message must fit within this many tokens."""
    refit_tokens: int | None = None
    """When older turns must go, cut down to this many tokens (``prompt_tokens`` if unset)."""


@dataclass(frozen=True, slots=True)
class Fitted:
    messages: tuple[Message, ...]
    tokens: int
    """The prompt's estimated size in tokens."""
    left_out: int
    """How many older messages did not fit."""
    first_kept: Message | None = None
    """The oldest message kept of a trimmed conversation (``None`` if nothing was left out):
    pass it as ``keep_from`` with the chat's next request."""


def fit_messages(
    messages: Sequence[Message],
    cost: Callable[[Message], int],
    *,
    base_tokens: int,
    budget: Budget,
    keep_from: Message | None = None,
) -> Fitted:
    """Choose what to send. ``cost`` gives a message's size in the prompt (its text and the chat
    template's framing), ``base_tokens`` what the template adds once; ``keep_from`` is where
    the chat's previous request started (its ``first_kept``), kept if everything from there
    still fits."""
    if not messages:
        raise InvalidRequestError("There is nothing to answer: the conversation is empty.")
    system = messages[0] if messages[0].role is Role.SYSTEM and len(messages) > 1 else None
    head = (system,) if system is not None else ()
    newest = messages[-1]
    older = messages[len(head) : -1]
    used = base_tokens + sum(cost(message) for message in (*head, newest))
    if used > budget.hard_limit:
        with_system = " with the persona's instructions" if system is not None else ""
        raise PromptTooLong(
            f"This message{with_system} is too long for the local model: about {used} tokens, "
            f"and it can read at most {budget.hard_limit}. Shorten it, or send it to a provider "
            "with a larger context."
        )
    turns = _turns(older)
    sizes = [sum(cost(message) for message in turn) for turn in turns]
    if used + sum(sizes) <= budget.prompt_tokens:
        return Fitted((*head, *older, newest), used + sum(sizes), 0)
    starts = [index for index, turn in enumerate(turns) if turn[0] == keep_from]
    if keep_from is not None and starts and used + sum(sizes[starts[-1] :]) <= budget.prompt_tokens:
        first = starts[-1]  # where the previous request started: its prompt is in the cache
    else:
        target = budget.refit_tokens or budget.prompt_tokens
        first = len(turns)
        while first > 0 and used + sum(sizes[first - 1 :]) <= target:
            first -= 1
    kept = [message for turn in turns[first:] for message in turn]
    return Fitted(
        (*head, *kept, newest),
        used + sum(sizes[first:]),
        len(older) - len(kept),
        kept[0] if kept else None,
    )


def _turns(messages: Sequence[Message]) -> list[Sequence[Message]]:
    """Split into turns, each a user message and the replies that follow it, so that a trimmed
    conversation never starts with an answer to a question that was left out."""
    starts = [i for i, message in enumerate(messages) if message.role is Role.USER]
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    bounds = [*starts, len(messages)]
    return [messages[a:b] for a, b in pairwise(bounds) if a < b]
