"""Defaults that several parts of the engine and the front ends agree on."""

DEFAULT_CHAIN: tuple[str, ...] = ("local", "fallback")
"""The provider chain a new chat starts with: the embedded offline model, then the canned
reply that never fails."""

DEFAULT_PERSONA = "assistant"
