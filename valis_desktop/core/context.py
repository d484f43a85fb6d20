"""Context assembly: the messages a provider receives for one request of a session."""

from __future__ import annotations

from collections.abc import Sequence

from valis_desktop.api import Message, Persona, Role


def build_messages(
    persona: Persona | None, history: Sequence[Message], user: Message
) -> tuple[Message, ...]:
    """The persona's system prompt first (if it has one), then the session's own history, oldest
    first, then the new user message."""
    if persona is not None and persona.system_prompt:
        system = Message(role=Role.SYSTEM, content=persona.system_prompt)
        return (system, *history, user)
    return (*history, user)
