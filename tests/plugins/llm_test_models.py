"""A test-only llm plugin: models that do what llm-echo cannot (stream in several chunks, fail
part way, hang until stopped, answer "429").

It is registered in llm's own plugin manager (``llm.pm.register``) by the tests' fixture, the way
llm's documentation tells plugin authors to test; importing this module imports llm, so the
tests import it only after pointing llm at a temporary user directory.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import llm
from llm.parts import StreamEvent, TextPart
from pydantic import Field

TRANSCRIPT = "valis-transcript"
BREAKS = "valis-breaks"
HANGS = "valis-hangs"
LIMITED = "valis-limited"
ODD = "Valis/Odd Name"
ODD_TWIN = "valis-odd-name"
COOL = "valis-cool"
SINGLE = "valis-single"

THOUGHT = "(a thought that is not part of the answer)"


@dataclass
class State:
    """What the models saw, and a stop the tests can wait for."""

    prompts: list[llm.Prompt] = field(default_factory=list)
    hanging: asyncio.Event | None = None
    closed: bool = False


state = State()


def reset() -> State:
    global state
    state = State()
    return state


class _Sync(llm.Model):
    """llm registers models in pairs; the bridge uses the async one only."""

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id

    def execute(
        self, prompt: llm.Prompt, stream: bool, response: Any, conversation: Any
    ) -> Iterator[str]:
        yield "sync"


class _Async(llm.AsyncModel):
    can_stream = True

    class Options(llm.Options):
        temperature: float | None = Field(default=None)

    def __init__(self, model_id: str, run: Callable[..., AsyncGenerator[Any, None]]) -> None:
        self.model_id = model_id
        self._run = run

    async def execute(  # type: ignore[override]
        self, prompt: llm.Prompt, stream: bool, response: llm.AsyncResponse, conversation: Any
    ) -> AsyncGenerator[Any, None]:
        state.prompts.append(prompt)
        async with aclosing(self._run(prompt, response)) as items:
            async for item in items:
                yield item


class _Cool(_Async):
    """Takes temperatures up to 1 only."""

    class Options(llm.Options):
        temperature: float | None = Field(default=None, le=1.0)


class _Single(_Async):
    """Answers single messages: llm refuses it earlier answers."""

    supports_conversation = False


async def _transcript(prompt: llm.Prompt, response: llm.AsyncResponse) -> AsyncGenerator[Any, None]:
    """Thinks once, then writes every message it was given, one chunk each."""
    yield StreamEvent(type="reasoning", chunk=THOUGHT)
    for message in prompt.messages:
        text = "".join(p.text for p in message.parts if isinstance(p, TextPart))
        yield f"{message.role}: {text}\n"
    temperature = prompt.options.temperature  # type: ignore[attr-defined]
    if temperature is not None:
        yield f"(temperature {temperature})\n"
    response.set_usage(input=len(prompt.messages), output=len(prompt.messages))


async def _breaks(prompt: llm.Prompt, response: llm.AsyncResponse) -> AsyncGenerator[Any, None]:
    yield "partial "
    await asyncio.sleep(0)
    raise RuntimeError("the model fell over")


async def _hangs(prompt: llm.Prompt, response: llm.AsyncResponse) -> AsyncGenerator[Any, None]:
    state.hanging = asyncio.Event()
    try:
        yield "first words "
        await state.hanging.wait()  # never set: only a stop ends this answer
        yield "never sent"
    finally:
        state.closed = True


class TooManyRequests(Exception):
    """Shaped like the openai and anthropic SDKs' status errors."""

    def __init__(self) -> None:
        super().__init__("Error code: 429 - slow down")
        self.message = "slow down"
        self.status_code = 429
        self.response = type("Response", (), {"headers": {"Retry-After": "7"}})()


async def _limited(prompt: llm.Prompt, response: llm.AsyncResponse) -> AsyncGenerator[Any, None]:
    raise TooManyRequests()
    yield ""  # pragma: no cover - makes this a generator


async def _answers(prompt: llm.Prompt, response: llm.AsyncResponse) -> AsyncGenerator[Any, None]:
    yield "odd"


MODELS: dict[str, Callable[..., AsyncGenerator[Any, None]]] = {
    TRANSCRIPT: _transcript,
    BREAKS: _breaks,
    HANGS: _hangs,
    LIMITED: _limited,
    ODD: _answers,
    ODD_TWIN: _answers,
}


@llm.hookimpl
def register_models(register: Callable[..., None]) -> None:
    for model_id, run in MODELS.items():
        register(_Sync(model_id), _Async(model_id, run))
    register(_Sync(COOL), _Cool(COOL, _transcript))
    register(_Sync(SINGLE), _Single(SINGLE, _transcript))
