"""The default persona, registered through the same hook as plugin persona packs."""

from __future__ import annotations

from valis_desktop.api import Persona, RegisterPersona, hookimpl

ASSISTANT = Persona(
    id="assistant",
    name="Assistant",
    description="A plain, helpful assistant.",
    system_prompt=(
        "You are a helpful assistant. Answer clearly and concisely. "
        "If you are not sure of something, say so."
    ),
    greeting="Hello! What can I help you with?",
)


@hookimpl
def register_personas(register: RegisterPersona) -> None:
    register(ASSISTANT)
