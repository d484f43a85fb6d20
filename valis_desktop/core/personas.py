"""The persona library: the built-in personas, the user's own, and plugin persona packs.

Every persona is one TOML file whose keys are the fields of ``Persona``. Built-ins ship in the
package (``valis_desktop/personas/``) and are read-only; the user's live in the platform data
directory and are created, edited and deleted here; plugin packs come from the
``register_personas`` hook, their ids namespaced as ``<plugin>:<id>`` so that packs cannot
collide. ``:`` is kept for those namespaces: a user persona's id never contains one.

A file or registration that cannot be used is listed in ``problems`` with the reason and
skipped; the rest load.
"""

from __future__ import annotations

import enum
import logging
import os
import tempfile
import tomllib
from dataclasses import dataclass
from importlib.abc import Traversable
from importlib.resources import files
from pathlib import Path
from typing import Any

import platformdirs
import tomli_w
from pydantic import ValidationError

from valis_desktop.api import Persona, describe_invalid
from valis_desktop.core.defaults import DEFAULT_PERSONA
from valis_desktop.core.plugins import PluginHost

log = logging.getLogger(__name__)

SUFFIX = ".toml"


def user_personas_dir() -> Path:
    """Where the user's personas live: one TOML file each."""
    return Path(platformdirs.user_data_dir("valis-desktop", appauthor=False)) / "personas"


class PersonaOrigin(enum.StrEnum):
    BUILTIN = "built-in"
    USER = "user"
    PLUGIN = "plugin"


@dataclass(frozen=True, slots=True)
class PersonaProblem:
    """A persona file or registration that was skipped, and why."""

    source: str
    """The file, or ``plugin '<name>'``."""
    message: str

    def __str__(self) -> str:
        return f"{self.source}: {self.message}"


class PersonaError(Exception):
    """A change to the library was refused; the message says why and what to do instead."""


class PersonaLibrary:
    """Every persona the application knows, by id: built-ins first, then the user's, then the
    plugins'. ``personas`` is one dict, kept up to date in place by ``load``, ``save`` and
    ``delete`` (the engine and the persona pickers share it)."""

    def __init__(
        self, user_dir: Path | None = None, builtin_dir: Traversable | None = None
    ) -> None:
        self.user_dir = user_dir if user_dir is not None else user_personas_dir()
        self._builtin_dir = builtin_dir or files("valis_desktop.personas")
        self.personas: dict[str, Persona] = {}
        self.problems: list[PersonaProblem] = []
        self._origins: dict[str, PersonaOrigin] = {}
        self._plugins: dict[str, str] = {}
        self._paths: dict[str, Path] = {}

    def load(self, host: PluginHost | None = None) -> None:
        """(Re)read the built-ins, the user's files and, with ``host``, the plugins' packs."""
        self.personas.clear()
        self.problems.clear()
        self._origins.clear()
        self._plugins.clear()
        self._paths.clear()
        self._load_builtins()
        self._load_user_files()
        if host is not None:
            self._load_plugins(host)
        self._reorder()

    def get(self, persona_id: str) -> Persona | None:
        return self.personas.get(persona_id)

    def origin(self, persona_id: str) -> PersonaOrigin:
        """Where the persona comes from; ``KeyError`` if there is none with this id."""
        return self._origins[persona_id]

    def plugin(self, persona_id: str) -> str | None:
        """The plugin that registered the persona, if a plugin did."""
        return self._plugins.get(persona_id)

    def editable(self, persona_id: str) -> bool:
        """Only the user's own personas can be edited and deleted."""
        return self._origins.get(persona_id) is PersonaOrigin.USER

    def check_user_id(self, persona_id: str) -> None:
        """Raise ``PersonaError`` if a user persona may not have this id."""
        if ":" in persona_id:
            raise PersonaError(
                f"The id '{persona_id}' contains ':', which is kept for personas of plugins. "
                "Choose an id without it."
            )
        origin = self._origins.get(persona_id)
        if origin is PersonaOrigin.BUILTIN:
            raise PersonaError(
                f"The id '{persona_id}' belongs to a built-in persona, which cannot be "
                "overwritten. Duplicate the built-in persona and edit the copy."
            )

    def save(self, persona: Persona) -> Path:
        """Write ``persona`` as a user persona (a new one, or an edit of the user's own) and
        return its file. The file is replaced atomically: a crash leaves the old or the new
        version, never half of one. Raises ``PersonaError`` for a built-in's id or a plugin's,
        ``OSError`` if the file cannot be written."""
        self.check_user_id(persona.id)
        path = self._paths.get(persona.id, self.user_dir / f"{persona.id}{SUFFIX}")
        path.parent.mkdir(parents=True, exist_ok=True)
        text = tomli_w.dumps(_to_toml(persona), multiline_strings=True)
        handle, temporary = tempfile.mkstemp(
            prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent
        )
        try:
            with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        self._add(persona, PersonaOrigin.USER, path=path)
        self._reorder()
        return path

    def delete(self, persona_id: str) -> None:
        """Remove one of the user's personas and its file. Raises ``PersonaError`` for a
        built-in or a plugin's persona, ``KeyError`` for an unknown id."""
        origin = self._origins[persona_id]
        if origin is not PersonaOrigin.USER:
            raise PersonaError(
                f"'{self.personas[persona_id].name}' is a {origin.value} persona and cannot be "
                "deleted. Only your own personas can."
            )
        self._paths[persona_id].unlink(missing_ok=True)
        del self.personas[persona_id], self._origins[persona_id], self._paths[persona_id]

    def duplicate(self, persona_id: str) -> Persona:
        """An editable copy of any persona, with a free id and "(copy)" after its name. It is
        not saved: ``save`` it to keep it. ``KeyError`` for an unknown id."""
        original = self.personas[persona_id]
        base = persona_id.replace(":", "-")
        new_id = f"{base}-copy"
        number = 2
        while new_id in self.personas or (self.user_dir / f"{new_id}{SUFFIX}").exists():
            new_id = f"{base}-copy-{number}"
            number += 1
        name = f"{original.name} (copy)"
        if len(name) > 80:
            name = original.name[:73].rstrip() + " (copy)"
        return original.model_copy(update={"id": new_id, "name": name})

    def _load_builtins(self) -> None:
        entries = [e for e in self._builtin_dir.iterdir() if e.name.endswith(SUFFIX)]
        for entry in sorted(entries, key=lambda e: e.name):
            persona = self._read(f"built-in {entry.name}", entry)
            if persona is not None:
                self._add(persona, PersonaOrigin.BUILTIN)

    def _load_user_files(self) -> None:
        if not self.user_dir.is_dir():
            return
        for path in sorted(self.user_dir.glob(f"*{SUFFIX}")):
            persona = self._read(str(path), path)
            if persona is None:
                continue
            try:
                self.check_user_id(persona.id)
                if persona.id in self.personas:
                    raise PersonaError(
                        f"Another of your personas already has the id '{persona.id}'. "
                        "Give each persona its own id."
                    )
            except PersonaError as error:
                self._problem(str(path), f"{error} The file was skipped.")
                continue
            self._add(persona, PersonaOrigin.USER, path=path)

    def _load_plugins(self, host: PluginHost) -> None:
        for record, persona in host.personas():
            if record.builtin:
                # The built-in plugins' personas are the package's persona files.
                if persona.id not in self.personas:
                    self._add(persona, PersonaOrigin.BUILTIN)
                continue
            source = f"plugin '{record.name}'"
            prefix = f"{record.name}:"
            namespaced = persona.id if persona.id.startswith(prefix) else prefix + persona.id
            try:
                persona = Persona.model_validate({**persona.model_dump(), "id": namespaced})
            except ValidationError as error:
                self._problem(
                    source, f"persona '{persona.id}' was refused: {describe_invalid(error)}"
                )
                continue
            if namespaced in self.personas:
                self._problem(
                    source,
                    f"persona '{namespaced}' was refused: the plugin already registered a "
                    "persona with this id. Each persona of a pack needs its own id.",
                )
                continue
            self._add(persona, PersonaOrigin.PLUGIN, plugin=record.name)

    def _read(self, source: str, entry: Traversable) -> Persona | None:
        try:
            data = tomllib.loads(entry.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as error:
            self._problem(source, f"could not be read: {error}. The file was skipped.")
            return None
        except tomllib.TOMLDecodeError as error:
            self._problem(
                source, f"not valid TOML: {error}. The file was skipped; fix it in a text editor."
            )
            return None
        unknown = sorted(set(data) - set(Persona.model_fields))
        if unknown:
            names = ", ".join(f"'{name}'" for name in unknown)
            self._problem(
                source,
                f"unknown field{'s' * (len(unknown) > 1)} {names} (a typo?). The file was skipped.",
            )
            return None
        try:
            return Persona.model_validate(data)
        except ValidationError as error:
            self._problem(source, f"{describe_invalid(error)}. The file was skipped.")
            return None

    def _add(
        self,
        persona: Persona,
        origin: PersonaOrigin,
        *,
        path: Path | None = None,
        plugin: str | None = None,
    ) -> None:
        self.personas[persona.id] = persona
        self._origins[persona.id] = origin
        if path is not None:
            self._paths[persona.id] = path
        if plugin is not None:
            self._plugins[persona.id] = plugin

    def _reorder(self) -> None:
        """The default persona first, then built-ins, the user's and the plugins', by name."""
        rank = {PersonaOrigin.BUILTIN: 1, PersonaOrigin.USER: 2, PersonaOrigin.PLUGIN: 3}
        ordered = sorted(
            self.personas.values(),
            key=lambda p: (
                0 if p.id == DEFAULT_PERSONA else rank[self._origins[p.id]],
                p.name.casefold(),
                p.id,
            ),
        )
        self.personas.clear()
        self.personas.update((persona.id, persona) for persona in ordered)

    def _problem(self, source: str, message: str) -> None:
        log.warning("personas: %s: %s", source, message)
        self.problems.append(PersonaProblem(source, message))


def _to_toml(persona: Persona) -> dict[str, Any]:
    """The persona's fields as a TOML table: the ones left at their defaults are omitted (TOML
    has no null), and the system prompt, the longest, comes last."""
    data: dict[str, Any] = persona.model_dump(mode="json", exclude_defaults=True)
    prompt = data.pop("system_prompt", None)
    if prompt is not None:
        data["system_prompt"] = prompt
    return data
