"""Valis Desktop's ``llm`` plugin: every model of Simon Willison's llm library (and of the llm
plugins installed beside it) as a provider, ``llm.<model id>``.

Importing this package does not import llm; registering the providers does.
"""

from valis_llm_bridge.provider import LLMProvider

__all__ = ["LLMProvider"]
