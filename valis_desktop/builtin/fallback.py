"""The "never fails" last resort: a canned reply in the persona's voice, clearly not a model.

It is registered through the same hook as any third-party provider and imports only the public
plugin API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from valis_desktop.api import ChatRequest, Provider, RegisterProvider, Role, hookimpl

_EXCERPT = 120


class FallbackProvider(Provider):
    id = "fallback"
    display_name = "Fallback (not a model)"
    description = (
        "A canned reply used when no language model can answer. It never fails, and it never "
        "pretends to understand you."
    )
    default_concurrency = 64

    async def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        for part in compose_reply(request):
            yield part


def compose_reply(request: ChatRequest) -> list[str]:
    persona = request.persona
    name = persona.name if persona is not None else "Valis"
    first_turn = not any(m.role is Role.ASSISTANT for m in request.messages)
    excerpt = " ".join(request.prompt.split())
    if len(excerpt) > _EXCERPT:
        excerpt = excerpt[: _EXCERPT - 1].rstrip() + "…"
    parts = ["*[Fallback reply: not a language model.]*\n\n"]
    if first_turn and persona is not None and persona.greeting:
        parts.append(f"{persona.greeting}\n\n")
    parts.append(f"This is {name}. ")
    parts.append(f"No language model could answer “{excerpt}” just now, ")
    parts.append("so I cannot give you a real reply. ")
    parts.append(
        "Open the status panel to see which providers are failing, or add a provider in "
        "Settings, then retry this message."
    )
    return parts


@hookimpl
def register_providers(register: RegisterProvider) -> None:
    register(FallbackProvider())
