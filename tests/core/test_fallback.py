from __future__ import annotations

from valis_desktop.api import ChatRequest, Message, Persona, Role
from valis_desktop.builtin.fallback import FallbackProvider


async def reply_to(messages: list[Message], persona: Persona | None) -> str:
    request = ChatRequest(request_id="r", session_id="s", messages=tuple(messages), persona=persona)
    return "".join([chunk async for chunk in FallbackProvider().stream(request)])


async def test_fallback_speaks_as_the_persona_and_says_it_is_not_a_model() -> None:
    coach = Persona(id="coach", name="Coach", greeting="Ready when you are.")
    text = await reply_to([Message(role=Role.USER, content="How do I   start?")], coach)
    assert "not a language model" in text
    assert "Ready when you are." in text
    assert "This is Coach." in text
    assert "“How do I start?”" in text


async def test_fallback_greets_only_on_the_first_turn_and_shortens_long_messages() -> None:
    coach = Persona(id="coach", name="Coach", greeting="Ready when you are.")
    history = [
        Message(role=Role.USER, content="hi"),
        Message(role=Role.ASSISTANT, content="hello"),
        Message(role=Role.USER, content="word " * 100),
    ]
    text = await reply_to(history, coach)
    assert "Ready when you are." not in text
    assert "…”" in text
    assert len(text) < 600
