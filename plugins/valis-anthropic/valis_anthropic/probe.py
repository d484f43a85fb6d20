"""The SDK's side of "test connection" (``connection_check.check_connection``, which imports
this module on a worker thread)."""

from __future__ import annotations

import anthropic

from valis_anthropic.connection import make_client
from valis_anthropic.errors import provider_error
from valis_anthropic.settings import AnthropicInstance
from valis_desktop.api import ConnectionCheck

_PROBE = "Reply with the word OK."


async def probe(instance: AnthropicInstance, api_key: str) -> ConnectionCheck:
    """List the models, then ask the configured model for one token."""
    name = instance.display_name
    async with make_client(instance, api_key) as client:
        try:
            models = tuple(sorted([model.id async for model in client.models.list()]))
            await client.messages.create(
                model=instance.model,
                max_tokens=1,
                messages=[{"role": "user", "content": _PROBE}],
            )
        except anthropic.AnthropicError as error:
            return ConnectionCheck(ok=False, message=provider_error(error, name, api_key).message)
    listed = "" if instance.model in models else " (the server does not list it)"
    return ConnectionCheck(
        ok=True, message=f"Connected: {instance.model} answered{listed}.", models=models
    )
