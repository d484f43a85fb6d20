"""Context assembly: the messages a provider receives for one request of a session.

The budget is counted in estimated tokens: about four characters per token, plus a few tokens
of framing per message. That is close enough for English and code with the tokenizers of common
models, and it errs on the generous side for other scripts; a provider with an exact tokenizer
still makes the final decision (it may refuse a request that is too long).
"""

from __future__ import annotations

from collections.abc import Sequence

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
    sent, even if together they exceed the budget: the provider then decides.
    """
    head: tuple[Message, ...] = ()
    if persona is not None and persona.system_prompt:
        head = (Message(role=Role.SYSTEM, content=persona.system_prompt),)
    if budget_tokens is None:
        return (*head, *history, user)
    turns = _turns(history)
    room = budget_tokens - sum(map(estimate_tokens, (*head, user)))
    kept = len(turns)
    used = 0
    for index in range(len(turns) - 1, -1, -1):
        size = sum(map(estimate_tokens, turns[index]))
        if used + size > room:
            break
        used += size
        kept = index
    if kept == 0:
        return (*head, *history, user)
    # The note takes room too: leave out more turns until it fits alongside.
    note = left_out_note(len(history))  # as many digits as the real count may have, or more
    while kept < len(turns) and used + estimate_tokens(note) > room:
        used -= sum(map(estimate_tokens, turns[kept]))
        kept += 1
    dropped = sum(len(turn) for turn in turns[:kept])
    recent = [message for turn in turns[kept:] for message in turn]
    return (*head, left_out_note(dropped), *recent, user)


def _turns(history: Sequence[Message]) -> list[list[Message]]:
    """``history`` cut before every user message: each turn is a question and its answer."""
    turns: list[list[Message]] = []
    for message in history:
        if message.role is Role.USER or not turns:
            turns.append([message])
        else:
            turns[-1].append(message)
    return turns
