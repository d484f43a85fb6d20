"""A provider for one OpenAI-compatible endpoint and model: an instance of the ``openai``
plugin."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from valis_desktop.api import ChatRequest, Provider, StreamItem, import_in_thread
from valis_openai.settings import OpenAIInstance

if TYPE_CHECKING:
    from valis_openai.connection import Connection


class OpenAIProvider(Provider):
    """Streams answers from one configured endpoint.

    The model is always the instance's: a chat's ``ChatRequest.model`` is not sent, because a
    chain may hold providers of other servers, which would not know that name.
    """

    def __init__(self, instance: OpenAIInstance, api_key: str | None) -> None:
        self.id = instance.id
        self.display_name = instance.display_name
        self.description = instance.description
        self.default_concurrency = instance.limit
        self.instance = instance
        self._api_key = api_key
        self._connection: Connection | None = None

    def __repr__(self) -> str:
        return f"<OpenAIProvider {self.id!r} {self.instance.model!r} at {self.instance.base_url}>"

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamItem]:
        connection = await self._connected()
        answer = connection.stream(request)
        try:
            async for item in answer:
                yield item
        finally:
            await answer.aclose()  # at once, so that a stopped answer's request ends now

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.aclose()

    async def _connected(self) -> Connection:
        if self._connection is None:
            await import_in_thread("valis_openai.connection")
            from valis_openai.connection import Connection

            if self._connection is None:  # another request may have connected meanwhile
                self._connection = Connection(self.instance, self._api_key)
        return self._connection
