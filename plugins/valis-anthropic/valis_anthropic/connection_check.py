"""The "test connection" of the Settings dialog: can this endpoint, with this key, answer?"""

from __future__ import annotations

from pydantic import BaseModel

from valis_anthropic.settings import AnthropicInstance
from valis_desktop.api import ConnectionCheck, import_in_thread


async def check_connection(instance: BaseModel, api_key: str | None) -> ConnectionCheck:
    """List the models, then ask the configured model for one token.

    Nothing is raised: a failure is a result with ``ok`` false and a message saying what to fix.
    """
    if not isinstance(instance, AnthropicInstance):
        raise TypeError(f"an AnthropicInstance is needed, not {type(instance).__name__}")
    if not api_key:
        return ConnectionCheck(
            ok=False, message=f"{instance.display_name} has no API key: enter the key first."
        )
    await import_in_thread("valis_anthropic.probe")
    from valis_anthropic.probe import probe

    return await probe(instance, api_key)
