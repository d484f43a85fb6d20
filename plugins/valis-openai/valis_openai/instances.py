"""Reading the plugin's instances from its table of the settings file.

Each ``[[plugins.<name>.instances]]`` entry is validated on its own: a bad one is reported (which
one, which field, why) and skipped, and the others still register. Messages never quote a value
from the file, so a key pasted there by mistake cannot reach the logs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from valis_desktop.api import PluginContext

PROVIDER_ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
"""What the application accepts as a provider id."""
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"

_SECRET_FIELDS = frozenset({"key", "api_key", "apikey", "token", "secret", "password"})

M = TypeVar("M", bound=BaseModel)


def refuse_secrets(data: Any) -> Any:
    """A ``mode="before"`` validator: API keys belong in the keychain, never in the file."""
    if isinstance(data, Mapping):
        for field in data:
            if isinstance(field, str) and field.lower() in _SECRET_FIELDS:
                raise ValueError(
                    f"API keys never go in the settings file: remove '{field}' and store the "
                    "key in Settings (it is kept in the system keychain)"
                )
    return data


def load_instances(context: PluginContext, model: type[M]) -> list[M]:
    """The valid instances of ``context.settings["instances"]``, in order, ids unique."""
    table = f"[[plugins.{context.plugin}.instances]]"
    entries = context.settings.get("instances", [])
    if not isinstance(entries, Sequence) or isinstance(entries, str):
        context.problem(
            f"[plugins.{context.plugin}] 'instances' must be a list of {table} tables; "
            "no instance was loaded."
        )
        return []
    loaded: list[M] = []
    seen: set[str] = set()
    for number, entry in enumerate(entries, start=1):
        where = f"{table} number {number}{_named(entry)}"
        if not isinstance(entry, Mapping):
            context.problem(f"{where} is not a table; it was skipped.")
            continue
        try:
            instance = model.model_validate(entry)
        except ValidationError as error:
            context.problem(f"{where} was skipped: {describe(error)}. Fix it in the settings file.")
            continue
        instance_id = getattr(instance, "id", "")
        if instance_id in seen:
            context.problem(
                f"{where} was skipped: another instance already has the id '{instance_id}'. "
                "Give each instance its own id."
            )
            continue
        seen.add(instance_id)
        loaded.append(instance)
    return loaded


def describe(error: ValidationError) -> str:
    """Which fields are wrong and why, without the values."""
    parts = []
    for problem in error.errors(include_url=False, include_input=False, include_context=False):
        field = ".".join(str(part) for part in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        parts.append(f"{field}: {message}" if field else message)
    return "; ".join(parts)


def _named(entry: object) -> str:
    if isinstance(entry, Mapping):
        instance_id = entry.get("id")
        if isinstance(instance_id, str) and 0 < len(instance_id) <= 64:
            return f" (id '{instance_id}')"
    return ""
