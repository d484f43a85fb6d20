"""Valis Desktop: a Qt-native desktop chat client for language models."""

__version__ = "0.1.0"
