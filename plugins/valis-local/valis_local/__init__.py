"""Valis Desktop's ``local`` provider: a tiny language model embedded in the app (llama.cpp
through xllamacpp), so that it answers offline, with no account."""

from valis_local.provider import LocalProvider

__all__ = ["LocalProvider"]
