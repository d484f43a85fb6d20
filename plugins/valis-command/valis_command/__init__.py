"""Valis Desktop's ``command`` provider: any command-line model tool, run as a subprocess with
the conversation on its standard input and its standard output streamed as the answer."""

from valis_command.provider import CommandProvider
from valis_command.settings import CommandInstance

__all__ = ["CommandInstance", "CommandProvider"]
