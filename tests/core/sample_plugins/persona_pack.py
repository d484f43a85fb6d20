from valis_desktop.api import Persona, RegisterPersona, hookimpl


@hookimpl
def register_personas(register: RegisterPersona) -> None:
    register(Persona(id="sage", name="Sage", system_prompt="Speak in proverbs."))
    register(Persona(id="persona_pack:bard", name="Bard", system_prompt="Rhyme."))
    # Becomes "persona_pack:bard" as well: refused, the first one stays.
    register(Persona(id="bard", name="Second Bard", system_prompt="Rhyme twice."))
