"""A plugin for the tests of the pytest fixtures: one scripted provider, ``kit``, and one
persona; every provider it registers is kept in ``REGISTERED``."""

from valis_desktop.api import Persona, RegisterPersona, RegisterProvider, hookimpl
from valis_desktop.testing import ScriptedProvider

VALIS_API_VERSION = (1, 0)

REGISTERED: list[ScriptedProvider] = []


@hookimpl
def register_providers(register: RegisterProvider) -> None:
    provider = ScriptedProvider(id="kit", display_name="Kit")
    REGISTERED.append(provider)
    register(provider)


@hookimpl
def register_personas(register: RegisterPersona) -> None:
    register(Persona(id="terse", name="Terse", system_prompt="Answer in one word."))
