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

from pydantic import Field

from valis_desktop.api import PROVIDER_ID_PATTERN, HttpInstance

ANTHROPIC_URL = "https://api.anthropic.com"


class AnthropicInstance(HttpInstance):
    """One Claude model at Anthropic (or at a server that speaks its API)."""

    id: str = Field(pattern=PROVIDER_ID_PATTERN)
    """The provider's id in chains: lower-case letters, digits, ".", "_" or "-" (e.g. claude)."""
    model: str = Field(min_length=1, max_length=200)
    """The model to ask, as Anthropic names it."""
    base_url: str = ANTHROPIC_URL
    """The API's address (Anthropic's own, or a proxy's)."""
    max_tokens: int = Field(1024, ge=1, le=1_000_000)
    """The longest answer, in tokens, when the chat sets no limit (Anthropic requires one)."""

    @property
    def description(self) -> str:
        return f"{self.model} at {self.base_url} (Anthropic)"
