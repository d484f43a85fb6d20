"""The default persona, registered through the same hook as plugin persona packs.

Its one definition is the package's ``personas/assistant.toml``, the file the persona library
lists among the built-ins too.
"""

from __future__ import annotations

import tomllib
from importlib.resources import files

from valis_desktop.api import Persona, RegisterPersona, hookimpl

ASSISTANT = Persona.model_validate(
    tomllib.loads(files("valis_desktop.personas").joinpath("assistant.toml").read_text("utf-8"))
)


@hookimpl
def register_personas(register: RegisterPersona) -> None:
    register(ASSISTANT)
