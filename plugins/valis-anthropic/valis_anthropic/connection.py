"""Streamed messages from one Anthropic endpoint through the official ``anthropic`` SDK, with the
SDK's own retries off (the application owns retries and fallbacks), and every failure mapped to
the application's error classes.

Importing this module imports the SDK (about a second): ``AnthropicProvider`` does it on first
use, on a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import anthropic
from anthropic.types import MessageParam, RawMessageStreamEvent

from valis_anthropic.errors import provider_error
from valis_anthropic.settings import AnthropicInstance
from valis_desktop.api import (
    ChatRequest,
    InvalidRequestError,
    Message,
    ProviderError,
    Role,
    StreamItem,
    TransientError,
    Usage,
    redact,
)

CONVERSATION_START = "(The conversation starts with your message below.)"
"""Anthropic wants the user to speak first: put before a conversation that opens with an answer
(a persona's greeting, say)."""


def make_client(instance: AnthropicInstance, api_key: str) -> anthropic.AsyncAnthropic:
    timeouts = instance.timeouts
    return anthropic.AsyncAnthropic(
        api_key=api_key,
        base_url=instance.base_url,
        max_retries=0,
        # The provider enforces first_byte and read itself, phase by phase; the SDK's read
        # timeout only backs them up.
        timeout=anthropic.Timeout(
            connect=timeouts.connect,
            read=max(timeouts.first_byte, timeouts.read),
            write=max(timeouts.connect, timeouts.read),
            pool=timeouts.connect,
        ),
        default_headers=instance.headers or None,
        open_telemetry=False,  # conversations never go to a tracer
    )


class Connection:
    """The SDK's side of one instance: its HTTP client."""

    def __init__(self, instance: AnthropicInstance, api_key: str) -> None:
        self.instance = instance
        self.display_name = instance.display_name
        self._api_key = api_key
        self._client: anthropic.AsyncAnthropic | None = None

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamItem, None]:
        name = self.display_name
        timeouts = self.instance.timeouts
        loop = asyncio.get_running_loop()
        first_deadline = loop.time() + timeouts.first_byte
        answer = _Answer()
        failure: ProviderError
        try:
            async with asyncio.timeout_at(first_deadline):
                events = await self._open(request)
            try:
                while True:
                    deadline = loop.time() + timeouts.read if answer.started else first_deadline
                    async with asyncio.timeout_at(deadline):
                        event = await anext(events, None)
                    if event is None:
                        break
                    text = answer.read(event)
                    if text:
                        yield text
            finally:
                await events.close()
        except TimeoutError:
            failure = timeouts.expired(name, started=answer.started)
        except anthropic.AnthropicError as error:
            failure = provider_error(error, name, self._api_key)
        except ValueError as error:  # not JSON, or JSON of the wrong shape
            failure = TransientError(
                redact(f"{name} sent a malformed stream: {error}", self._api_key)
            )
        else:
            if not answer.finished:
                raise TransientError(f"{name} ended the answer before finishing it.")
            if answer.usage is not None:
                yield answer.usage
            return
        # Raised outside the handler, so that the SDK's error is not kept as its context: its
        # text may quote a server that echoed the key, and its traceback holds the SDK's
        # stream generators, which are then finalized now rather than whenever it is dropped.
        raise failure

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def _open(self, request: ChatRequest) -> anthropic.AsyncStream[RawMessageStreamEvent]:
        if self._client is None:
            self._client = make_client(self.instance, self._api_key)
        system, messages = to_anthropic_messages(request.messages)
        return await self._client.messages.create(
            model=self.instance.model,
            max_tokens=request.params.max_tokens or self.instance.max_tokens,
            system=system or anthropic.omit,
            messages=messages,
            stream=True,
        )


def to_anthropic_messages(messages: Sequence[Message]) -> tuple[str, list[MessageParam]]:
    """The system prompt (Anthropic takes it apart) and the turns: same-role neighbours merged,
    blank messages left out (the API refuses them), and the user first."""
    system = "\n\n".join(m.content for m in messages if m.role is Role.SYSTEM and m.content.strip())
    turns: list[tuple[Role, list[str]]] = []
    for message in messages:
        if message.role is Role.SYSTEM or not message.content.strip():
            continue
        if turns and turns[-1][0] is message.role:
            turns[-1][1].append(message.content)
        else:
            turns.append((message.role, [message.content]))
    if not turns:
        raise InvalidRequestError("There is nothing to answer: the conversation is empty.")
    if turns[0][0] is Role.ASSISTANT:
        turns.insert(0, (Role.USER, [CONVERSATION_START]))
    converted: list[MessageParam] = []
    for role, parts in turns:
        content = "\n\n".join(parts)
        if role is Role.USER:
            converted.append({"role": "user", "content": content})
        else:
            converted.append({"role": "assistant", "content": content})
    return system, converted


class _Answer:
    """What the events of one answer said so far.

    The SDK builds events without validating them, so a server's odd data shows here.
    """

    def __init__(self) -> None:
        self.started = False
        """Whether the answer itself has begun: until then the first-byte timeout applies."""
        self.finished = False
        self._prompt_tokens: int | None = None
        self._completion_tokens: int | None = None

    @property
    def usage(self) -> Usage | None:
        if self._prompt_tokens is None and self._completion_tokens is None:
            return None
        return Usage(prompt_tokens=self._prompt_tokens, completion_tokens=self._completion_tokens)

    def read(self, event: Any) -> str:
        """The event's text, if it carries some."""
        kind = getattr(event, "type", None)
        if kind == "content_block_delta":
            self.started = True  # thinking counts: the model is at work
            delta = getattr(event, "delta", None)
            if getattr(delta, "type", None) != "text_delta":
                return ""  # thinking, tool input: not part of the answer's text
            text = getattr(delta, "text", None)
            if not isinstance(text, str):
                raise ValueError("a text delta without text")
            return text
        if kind == "message_start":
            usage = getattr(getattr(event, "message", None), "usage", None)
            self._prompt_tokens = _count(getattr(usage, "input_tokens", None))
        elif kind == "message_delta":
            self._completion_tokens = _count(
                getattr(getattr(event, "usage", None), "output_tokens", None)
            )
        elif kind == "message_stop":
            self.started = self.finished = True
        return ""


def _count(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int):
        raise ValueError("a token count that is not a number")
    return value
