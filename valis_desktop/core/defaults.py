"""Defaults that several parts of the engine and the front ends agree on."""

DEFAULT_CHAIN: tuple[str, ...] = ("fallback",)
"""The provider chain a new chat starts with."""

DEFAULT_PERSONA = "assistant"
