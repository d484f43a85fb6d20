"""Fitting a conversation into the model's context: the system prompt and the newest message
always, then as many of the most recent turns as the prompt budget allows, each turn whole.

A conversation that grows long never fails: its oldest turns are left out. Only a single message
(with the system prompt) too long for the context is an error, and one the user can act on.
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


@dataclass(frozen=True, slots=True)
class Fitted:
    messages: tuple[Message, ...]
    tokens: int
    """The prompt's estimated size in tokens."""
    left_out: int
    """How many older messages did not fit."""


def fit_messages(
    messages: Sequence[Message],
    cost: Callable[[Message], int],
    *,
    base_tokens: int,
    budget: Budget,
) -> Fitted:
    """Choose what to send. ``cost`` gives a message's size in the prompt (its text and the chat
    template's framing), ``base_tokens`` what the template adds once."""
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
    kept: list[Message] = []
    for turn in reversed(_turns(older)):
        size = sum(cost(message) for message in turn)
        if used + size > budget.prompt_tokens:
            break
        kept[:0] = turn
        used += size
    return Fitted((*head, *kept, newest), used, len(older) - len(kept))


def _turns(messages: Sequence[Message]) -> list[Sequence[Message]]:
    """Split into turns, each a user message and the replies that follow it, so that a trimmed
    conversation never starts with an answer to a question that was left out."""
    starts = [i for i, message in enumerate(messages) if message.role is Role.USER]
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    bounds = [*starts, len(messages)]
    return [messages[a:b] for a, b in pairwise(bounds) if a < b]
