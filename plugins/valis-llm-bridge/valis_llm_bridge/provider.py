"""One of llm's async models as a provider."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from valis_desktop.api import (
    ChatRequest,
    Progress,
    Provider,
    ProviderError,
    StreamItem,
    TransientError,
    Usage,
)
from valis_llm_bridge.errors import request_error, stream_error
from valis_llm_bridge.prompting import start_response

if TYPE_CHECKING:
    from valis_llm_bridge.catalogue import LLMModel

THINKING = "thinking…"
_THINKING_EVERY = 1.0
"""Seconds between two "thinking…" notes while a reasoning model reasons before answering."""


class LLMProvider(Provider):
    """Answers with one llm model, through llm's async API.

    The model object is llm's own, made once when the providers are registered; llm reads its
    key (``llm keys set …``) at every request, so a key stored later works after a reset.
    """

    def __init__(self, provider_id: str, model: LLMModel) -> None:
        self.id = provider_id
        self.model_id = model.model_id
        self.display_name = f"llm: {model.model_id}"
        self.description = describe(model)
        # A model behind an API key is a remote service; one without is usually a model on this
        # computer, which answers one message at a time (or a local server; raise its limit in
        # Settings then).
        self.default_concurrency = 4 if model.needs_key else 1
        self._model = model

    def __repr__(self) -> str:
        return f"<LLMProvider {self.id!r} for llm model {self.model_id!r}>"

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamItem]:
        name = self.display_name
        key_name = self._model.needs_key
        failure: ProviderError | None = None
        try:
            response = start_response(self._model, request)
        except Exception as error:
            failure = request_error(error, name, key_name)
        if failure is not None:
            raise failure  # outside the handler: llm's exception is not kept as its context
        loop = asyncio.get_running_loop()
        noted: float | None = None
        wrote = False
        usage: Usage | None = None
        events = response.astream_events()  # type: ignore[no-untyped-call]
        try:
            async for event in events:
                kind = getattr(event, "type", None)
                if kind == "text":
                    chunk = event.chunk
                    if isinstance(chunk, str) and chunk:
                        wrote = True
                        yield chunk
                elif (
                    kind == "reasoning"
                    and not wrote
                    and (noted is None or loop.time() - noted >= _THINKING_EVERY)
                ):
                    noted = loop.time()
                    yield Progress(message=THINKING)
            counted = await response.usage()
            usage = _usage(counted.input, counted.output)
        except Exception as error:
            failure = stream_error(error, name, key_name)
        finally:
            # Closing llm's event stream closes the model's own generator: a stopped answer's
            # request to the model ends now, not when the garbage collector gets to it.
            await events.aclose()
        if failure is not None:
            raise failure
        if not wrote:
            raise TransientError(f"{name} sent an empty answer.")
        if usage is not None:
            yield usage


def _usage(prompt_tokens: object, completion_tokens: object) -> Usage | None:
    def count(value: object) -> int | None:
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    usage = Usage(prompt_tokens=count(prompt_tokens), completion_tokens=count(completion_tokens))
    return usage if usage.prompt_tokens is not None or usage.completion_tokens is not None else None


def describe(model: LLMModel) -> str:
    source = type(model).__module__
    origin = "llm's built-in models" if source.startswith("llm.") else f"the llm plugin {source}"
    text = (
        f"llm's model '{model.model_id}' (from {origin}), run through the llm library with "
        "llm's own keys and model settings."
    )
    if model.needs_key:
        text += f" Its key: llm keys set {model.needs_key}."
    if not model.supports_conversation:
        text += " It answers each message on its own: it does not see the earlier turns."
    return text
