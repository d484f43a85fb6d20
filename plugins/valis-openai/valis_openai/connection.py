"""Streamed chat completions from one OpenAI-compatible endpoint through the official ``openai``
SDK, with the SDK's own retries off (the application owns retries and fallbacks), and every
failure mapped to the application's error classes.

Importing this module imports the SDK (half a second): ``OpenAIProvider`` does it on first use,
on a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Sequence

import openai
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam

from valis_desktop.api import (
    ChatRequest,
    Message,
    ProviderError,
    Role,
    StreamItem,
    TransientError,
    Usage,
    redact,
)
from valis_openai.errors import provider_error
from valis_openai.settings import OpenAIInstance

log = logging.getLogger(__name__)

NO_KEY = "no-key"
"""Sent when no key is configured: local servers (Ollama, LM Studio, llama.cpp) ignore it, and a
server that needs a key answers 401, which tells the user to set one."""


def make_client(instance: OpenAIInstance, api_key: str | None) -> openai.AsyncOpenAI:
    timeouts = instance.timeouts
    return openai.AsyncOpenAI(
        api_key=api_key or NO_KEY,
        base_url=instance.base_url,
        max_retries=0,
        # The provider enforces first_byte and read itself, phase by phase; the SDK's read
        # timeout only backs them up.
        timeout=openai.Timeout(
            connect=timeouts.connect,
            read=max(timeouts.first_byte, timeouts.read),
            write=max(timeouts.connect, timeouts.read),
            pool=timeouts.connect,
        ),
        default_headers=instance.headers or None,
    )


class Connection:
    """The SDK's side of one instance: its HTTP client, and what it learnt about the server."""

    def __init__(self, instance: OpenAIInstance, api_key: str | None) -> None:
        self.instance = instance
        self.display_name = instance.display_name
        self._api_key = api_key
        self._client: openai.AsyncOpenAI | None = None
        self._stream_usage = instance.stream_usage

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamItem, None]:
        name = self.display_name
        timeouts = self.instance.timeouts
        loop = asyncio.get_running_loop()
        first_deadline = loop.time() + timeouts.first_byte
        started = finished = False
        usage: Usage | None = None
        failure: ProviderError
        try:
            async with asyncio.timeout_at(first_deadline):
                chunks = await self._open(request)
            try:
                while True:
                    deadline = loop.time() + timeouts.read if started else first_deadline
                    async with asyncio.timeout_at(deadline):
                        chunk = await anext(chunks, None)
                    if chunk is None:
                        break
                    text, finished_now, chunk_usage = _read(chunk)
                    # A first chunk naming only the role may come long before the answer does.
                    started = started or bool(text) or finished_now
                    finished = finished or finished_now
                    usage = chunk_usage or usage
                    if text:
                        yield text
            finally:
                await chunks.close()
        except TimeoutError:
            failure = timeouts.expired(name, started=started)
        except openai.OpenAIError as error:
            failure = provider_error(error, name, self._api_key)
        except ValueError as error:  # not JSON, or JSON of the wrong shape
            failure = TransientError(
                redact(f"{name} sent a malformed stream: {error}", self._api_key)
            )
        else:
            if not finished:
                raise TransientError(f"{name} ended the answer before finishing it.")
            if usage is not None:
                yield usage
            return
        # Raised outside the handler, so that the SDK's error is not kept as its context: its
        # text may quote a server that echoed the key, and its traceback holds the SDK's
        # stream generators, which are then finalized now rather than whenever it is dropped.
        raise failure

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def _open(self, request: ChatRequest) -> openai.AsyncStream[ChatCompletionChunk]:
        if self._client is None:
            self._client = make_client(self.instance, self._api_key)
        if not self._stream_usage:
            return await self._create(self._client, request, with_usage=False)
        try:
            return await self._create(self._client, request, with_usage=True)
        except (openai.BadRequestError, openai.UnprocessableEntityError) as error:
            if "stream_options" not in str(error.body) + error.message:
                raise
        # An older server that does not know the option: ask without it, from now on.
        self._stream_usage = False
        log.info(
            "provider %r refuses stream_options: token counts are not asked for", self.instance.id
        )
        return await self._create(self._client, request, with_usage=False)

    async def _create(
        self, client: openai.AsyncOpenAI, request: ChatRequest, *, with_usage: bool
    ) -> openai.AsyncStream[ChatCompletionChunk]:
        params = request.params
        limit = params.max_tokens
        by_name = self.instance.length_parameter
        return await client.chat.completions.create(
            model=self.instance.model,
            messages=to_openai_messages(request.messages),
            stream=True,
            stream_options={"include_usage": True} if with_usage else openai.omit,
            temperature=openai.omit if params.temperature is None else params.temperature,
            max_tokens=limit if limit is not None and by_name == "max_tokens" else openai.omit,
            max_completion_tokens=(
                limit if limit is not None and by_name == "max_completion_tokens" else openai.omit
            ),
        )


def to_openai_messages(messages: Sequence[Message]) -> list[ChatCompletionMessageParam]:
    """The conversation as given: a persona's system prompt stays the first message."""
    converted: list[ChatCompletionMessageParam] = []
    for message in messages:
        if message.role is Role.SYSTEM:
            converted.append({"role": "system", "content": message.content})
        elif message.role is Role.ASSISTANT:
            converted.append({"role": "assistant", "content": message.content})
        else:
            converted.append({"role": "user", "content": message.content})
    return converted


def _read(chunk: ChatCompletionChunk) -> tuple[str, bool, Usage | None]:
    """A chunk's text, whether it finishes the answer, and its token counts.

    The SDK builds chunks without validating them, so a server's odd data shows here.
    """
    choices = getattr(chunk, "choices", None)
    if choices is None:
        choices = []  # some servers send null beside the token counts
    if not isinstance(choices, list):
        raise ValueError("a chunk without a list of choices")
    text, finished = "", False
    for choice in choices:
        if getattr(choice, "index", 0) != 0:
            continue  # only one answer is asked for
        content = getattr(getattr(choice, "delta", None), "content", None)
        if content is not None and not isinstance(content, str):
            raise ValueError("a chunk whose content is not text")
        text += content or ""
        finished = finished or getattr(choice, "finish_reason", None) is not None
    counts = getattr(chunk, "usage", None)
    usage = None
    if counts is not None:
        usage = Usage(
            prompt_tokens=getattr(counts, "prompt_tokens", None),
            completion_tokens=getattr(counts, "completion_tokens", None),
        )
    return text, finished, usage
