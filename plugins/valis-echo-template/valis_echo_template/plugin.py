"""The plugin's hooks and its one provider, ``echo-template``, which echoes the prompt back in
small chunks, the way a real model streams its answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from valis_desktop.api import ChatRequest, Provider, RegisterProvider, StreamItem, Usage, hookimpl

VALIS_API_VERSION = (1, 0)
"""The plugin API this plugin was written against: a newer application accepts it, an older
one refuses it with a clear message instead of failing somewhere deep."""

CHUNK = 8


class EchoProvider(Provider):
    id = "echo-template"
    display_name = "Echo (template)"
    description = "Repeats your message back; a starting point for provider plugins."
    default_concurrency = 8

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamItem]:
        prompt = request.prompt or "(an empty message)"
        for start in range(0, len(prompt), CHUNK):
            await asyncio.sleep(0)  # a real provider awaits its server here
            yield prompt[start : start + CHUNK]
        yield Usage(prompt_tokens=len(prompt.split()), completion_tokens=len(prompt.split()))


@hookimpl
def register_providers(register: RegisterProvider) -> None:
    register(EchoProvider())
