"""One Anthropic endpoint as the user configures it in the settings file::

    [[plugins.anthropic.instances]]
    id = "claude"
    name = "Claude"
    model = "claude-sonnet-5-5"
    max_tokens = 2048

The key is never in the file: it comes from the keychain (stored by the Settings dialog under the
instance's id) or, where no keychain exists, from the environment variable ``api_key_env`` names.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from valis_desktop.api import (
    ENV_NAME_PATTERN,
    PROVIDER_ID_PATTERN,
    HttpTimeouts,
    refuse_credential_headers,
    refuse_secrets,
)

ANTHROPIC_URL = "https://api.anthropic.com"


class AnthropicInstance(BaseModel):
    """One Claude model at Anthropic (or at a server that speaks its API)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    id: str = Field(pattern=PROVIDER_ID_PATTERN)
    """The provider's id in chains: lower-case letters, digits, ".", "_" or "-" (e.g. claude)."""
    name: str = Field("", max_length=80)
    """The name shown in the app (by default the id and the model)."""
    model: str = Field(min_length=1, max_length=200)
    """The model to ask, as Anthropic names it."""
    base_url: str = ANTHROPIC_URL
    """The API's address (Anthropic's own, or a proxy's)."""
    limit: int = Field(4, ge=1, le=256)
    """How many answers may be written at once."""
    max_tokens: int = Field(1024, ge=1, le=1_000_000)
    """The longest answer, in tokens, when the chat sets no limit (Anthropic requires one)."""
    timeouts: HttpTimeouts = HttpTimeouts()
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra HTTP headers for every request (never a key: keys go in the keychain)."""
    api_key_env: str | None = Field(None, pattern=ENV_NAME_PATTERN)
    """An environment variable that holds the key, used when the keychain has none."""

    @model_validator(mode="before")
    @classmethod
    def _refuse_secrets(cls, data: Any) -> Any:
        return refuse_secrets(data)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// address, such as " + ANTHROPIC_URL)
        return value.strip().rstrip("/")

    _no_credentials = field_validator("headers")(refuse_credential_headers)

    @property
    def display_name(self) -> str:
        return self.name or f"{self.id} ({self.model})"

    @property
    def description(self) -> str:
        return f"{self.model} at {self.base_url} (Anthropic)"
