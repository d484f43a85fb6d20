from valis_desktop.api import Persona, RegisterPersona, RegisterProvider, hookimpl
from valis_desktop.testing import ScriptedProvider


@hookimpl
def register_providers(register: RegisterProvider) -> None:
    register(ScriptedProvider(id="good"))


@hookimpl
def register_personas(register: RegisterPersona) -> None:
    register(Persona(id="good.pirate", name="Pirate", system_prompt="Arr."))
