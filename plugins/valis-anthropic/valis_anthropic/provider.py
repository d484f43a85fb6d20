"""A provider for one Anthropic model: an instance of the ``anthropic`` plugin."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from valis_anthropic.settings import AnthropicInstance
from valis_desktop.api import AuthError, ChatRequest, Provider, StreamItem, import_in_thread

if TYPE_CHECKING:
    from valis_anthropic.connection import Connection


class AnthropicProvider(Provider):
    """Streams answers from one configured endpoint.

    The model is always the instance's: a chat's ``ChatRequest.model`` is not sent, because a
    chain may hold providers of other servers, which would not know that name.
    """

    def __init__(self, instance: AnthropicInstance, api_key: str | None) -> None:
        self.id = instance.id
        self.display_name = instance.display_name
        self.description = instance.description
        self.default_concurrency = instance.limit
        self.instance = instance
        self._api_key = api_key
        self._connection: Connection | None = None

    def __repr__(self) -> str:
        instance = self.instance
        return f"<AnthropicProvider {self.id!r} {instance.model!r} at {instance.base_url}>"

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
        if not self._api_key:
            raise AuthError(
                f"{self.display_name} has no API key. Add the key for this provider in Settings, "
                "or name an environment variable holding it (api_key_env) in the settings file."
            )
        if self._connection is None:
            await import_in_thread("valis_anthropic.connection")
            from valis_anthropic.connection import Connection

            if self._connection is None:  # another request may have connected meanwhile
                self._connection = Connection(self.instance, self._api_key)
        return self._connection
