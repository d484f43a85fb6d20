"""Valis Desktop's ``anthropic`` provider: Anthropic's Claude models through the official SDK,
several named instances at once."""

from valis_anthropic.connection_check import check_connection
from valis_anthropic.provider import AnthropicProvider
from valis_anthropic.settings import AnthropicInstance

__all__ = ["AnthropicInstance", "AnthropicProvider", "check_connection"]
