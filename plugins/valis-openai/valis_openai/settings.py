"""One OpenAI-compatible endpoint as the user configures it in the settings file::

    [[plugins.openai.instances]]
    id = "ollama"
    name = "Ollama on this machine"
    base_url = "http://127.0.0.1:11434/v1"
    model = "llama3.2"
    limit = 2
    timeouts = { connect = 5, first_byte = 120, read = 60 }

The key is never in the file: it comes from the keychain (stored by the Settings dialog under the
instance's id) or, where no keychain exists, from the environment variable ``api_key_env`` names.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field

from valis_desktop.api import PROVIDER_ID_PATTERN, HttpInstance

OPENAI_URL = "https://api.openai.com/v1"


class OpenAIInstance(HttpInstance):
    """One OpenAI-compatible server and model."""

    id: str = Field(pattern=PROVIDER_ID_PATTERN)
    """The provider's id in chains: lower-case letters, digits, ".", "_" or "-" (e.g. ollama)."""
    model: str = Field(min_length=1, max_length=200)
    """The model to ask, as the server names it (e.g. gpt-4o-mini, llama3.2)."""
    base_url: str = OPENAI_URL
    """The server's API address, usually ending in /v1 (e.g. http://127.0.0.1:11434/v1)."""
    limit: int = Field(4, ge=1, le=256)
    """How many answers this server may write at once."""
    max_tokens_parameter: Literal["max_tokens", "max_completion_tokens"] | None = None
    """How the answer's length limit is sent. By default max_completion_tokens to OpenAI
    (whose newer models refuse max_tokens) and max_tokens to other servers."""
    stream_usage: bool = True
    """Ask for token counts at the end of each answer (turned off by itself for a server that
    refuses it)."""

    @property
    def description(self) -> str:
        return f"{self.model} at {self.base_url} (OpenAI-compatible)"

    @property
    def length_parameter(self) -> Literal["max_tokens", "max_completion_tokens"]:
        if self.max_tokens_parameter is not None:
            return self.max_tokens_parameter
        host = urlsplit(self.base_url).hostname or ""
        return "max_completion_tokens" if host == "api.openai.com" else "max_tokens"
