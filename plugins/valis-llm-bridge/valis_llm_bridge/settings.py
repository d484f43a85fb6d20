"""The plugin's table of the settings file, all of it optional::

    [plugins.llm]
    models = ["gpt-4o-mini", "echo"]    # only these of llm's models (ids or aliases)
    models = ["*"]                      # or all of them, those without a key yet too

Without ``models``, every async model llm knows that can answer now becomes a provider: those
that need no key, and those whose key llm has. Keys are llm's own (``llm keys set openai``),
never in this file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from valis_desktop.api import describe_invalid


class BridgeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    models: tuple[str, ...] | None = Field(None, max_length=500)
    """The llm models to offer, by id or alias (`llm models list`), or "*" for all; unset, those
    that can answer now (no key needed, or llm has the key)."""


def read_settings(table: Mapping[str, Any]) -> tuple[BridgeSettings | None, str]:
    """The settings, or ``None`` and what is wrong with them."""
    try:
        return BridgeSettings.model_validate(dict(table)), ""
    except ValidationError as error:
        return None, describe_invalid(error)
