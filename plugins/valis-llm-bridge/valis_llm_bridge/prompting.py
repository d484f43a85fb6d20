"""A ``ChatRequest`` as an llm prompt, for both kinds of llm model plugins.

llm 0.36 hands a model the whole conversation as ``prompt.messages`` when the caller passes
``messages=[llm.system(...), llm.user(...), llm.assistant(...)]``: that is what llm's own
OpenAI models and current plugins read. Plugins written for older llm versions read the earlier
turns from ``conversation.responses`` and the system prompt from ``prompt.system`` instead. The
prompt is built for both: a fresh conversation (never stored: nothing goes to llm's logs.db)
holds the earlier turns as finished responses, and the same turns go in ``messages``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from valis_desktop.api import ChatRequest, GenerationParams, Message, Role

if TYPE_CHECKING:
    import llm

    from valis_llm_bridge.catalogue import LLMModel


def start_response(model: LLMModel, request: ChatRequest) -> llm.AsyncResponse:
    """The model's (not yet started) response to ``request``; raises what llm raises for a
    request it cannot send (``ValueError`` and its kin)."""
    history = list(request.messages)
    prompt: str | None = None
    if history and history[-1].role is Role.USER:
        prompt = history.pop().content
    system = "\n\n".join(m.content for m in history if m.role is Role.SYSTEM)
    if not model.supports_conversation:
        # A single-turn model refuses earlier answers: it gets the system prompt and the
        # new message only (its provider's description says so).
        history = [m for m in history if m.role is Role.SYSTEM]
    conversation = model.conversation()
    conversation.responses.extend(_earlier_turns(model, history, system))
    return conversation.prompt(
        prompt,
        system=system or None,
        messages=[_message(m) for m in history],
        stream=model.can_stream,
        options=_options(model, request.params),
    )


def _message(message: Message) -> llm.Message:
    import llm

    build = {Role.SYSTEM: llm.system, Role.USER: llm.user, Role.ASSISTANT: llm.assistant}
    built: llm.Message = build[message.role](message.content)
    return built


def _earlier_turns(
    model: LLMModel, history: Sequence[Message], system: str
) -> list[llm.AsyncResponse]:
    """The earlier (question, answer) turns as finished responses, for older plugins."""
    import llm

    turns: list[tuple[str, str]] = []
    asked: str | None = None
    for message in history:
        if message.role is Role.USER:
            if asked is not None:
                turns.append((asked, ""))  # a question whose answer was never written
            asked = message.content
        elif message.role is Role.ASSISTANT:
            turns.append((asked or "", message.content))
            asked = None
    if asked is not None:
        turns.append((asked, ""))
    # fake() ("a utility to help with writing tests") makes a finished response without
    # running the model; it takes a key model as well, whatever its annotation says.
    maker = cast("llm.AsyncModel", model)
    fake = llm.AsyncResponse.fake
    return [fake(maker, question, system=system, response=answer) for question, answer in turns]


def _options(model: LLMModel, params: GenerationParams) -> dict[str, object]:
    """The request's sampling parameters that the model has options for."""
    known = model.Options.model_fields
    options: dict[str, object] = {}
    if params.temperature is not None and "temperature" in known:
        options["temperature"] = params.temperature
    if params.max_tokens is not None and "max_tokens" in known:
        options["max_tokens"] = params.max_tokens
    return options
