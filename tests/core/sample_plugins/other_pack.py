from valis_desktop.api import Persona, RegisterPersona, hookimpl


@hookimpl
def register_personas(register: RegisterPersona) -> None:
    register(Persona(id="sage", name="Another Sage", system_prompt="Speak in riddles."))
