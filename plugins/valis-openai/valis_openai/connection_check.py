"""The "test connection" of the Settings dialog: can this endpoint, with this key, answer?"""

from __future__ import annotations

from pydantic import BaseModel

from valis_desktop.api import ConnectionCheck, import_in_thread
from valis_openai.settings import OpenAIInstance


async def check_connection(instance: BaseModel, api_key: str | None) -> ConnectionCheck:
    """List the server's models, then ask the configured model for one token.

    Nothing is raised: a failure is a result with ``ok`` false and a message saying what to fix.
    The instance's timeouts apply to each step.
    """
    if not isinstance(instance, OpenAIInstance):
        raise TypeError(f"an OpenAIInstance is needed, not {type(instance).__name__}")
    await import_in_thread("valis_openai.probe")
    from valis_openai.probe import probe

    return await probe(instance, api_key)
