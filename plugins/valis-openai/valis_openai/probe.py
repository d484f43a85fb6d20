"""The SDK's side of "test connection" (``connection_check.check_connection``, which imports
this module on a worker thread)."""

from __future__ import annotations

import openai

from valis_desktop.api import ConnectionCheck
from valis_openai.connection import make_client
from valis_openai.errors import provider_error
from valis_openai.settings import OpenAIInstance

_PROBE = "Reply with the word OK."


async def probe(instance: OpenAIInstance, api_key: str | None) -> ConnectionCheck:
    """List the server's models, then ask the configured model for one token."""
    name = instance.display_name
    async with make_client(instance, api_key) as client:
        models: tuple[str, ...] = ()
        listing = ""
        try:
            models = tuple(sorted([model.id async for model in client.models.list()]))
        except openai.NotFoundError:
            listing = " It does not list its models."
        except openai.OpenAIError as error:
            return ConnectionCheck(ok=False, message=provider_error(error, name, api_key).message)
        by_name = instance.length_parameter
        try:
            await client.chat.completions.create(
                model=instance.model,
                messages=[{"role": "user", "content": _PROBE}],
                max_tokens=1 if by_name == "max_tokens" else openai.omit,
                max_completion_tokens=1 if by_name == "max_completion_tokens" else openai.omit,
            )
        except openai.OpenAIError as error:
            failure = provider_error(error, name, api_key)
            return ConnectionCheck(ok=False, message=failure.message, models=models)
    if models and instance.model not in models:
        listing = f" The model '{instance.model}' answered, though the server does not list it."
    elif models:
        listing = f" It lists {len(models)} model{'s' if len(models) != 1 else ''}."
    return ConnectionCheck(
        ok=True, message=f"Connected: {instance.model} answered.{listing}", models=models
    )
