"""Plugin loading: built-ins and entry points, one by one, each isolated from the others.

A plugin that fails to import, fails pluggy's validation, raises in a hook or registers something
invalid is quarantined with its traceback and the rest load. Strict mode (for plugin authors and
tests) raises instead. Safe mode loads the built-ins only.
"""

from __future__ import annotations

import enum
import importlib
import logging
import os
import re
import sys
import traceback
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

from valis_desktop.api import (
    API_VERSION,
    ENTRY_POINT_GROUP,
    PROJECT_NAME,
    PROVIDER_ID_PATTERN,
    HookSpecs,
    Persona,
    PluginContext,
    Provider,
    SettingsForm,
)
from valis_desktop.core.provider_manager import ProviderManager

log = logging.getLogger(__name__)

BUILTIN_PLUGINS: dict[str, str] = {
    "fallback": "valis_desktop.builtin.fallback",
    "personas": "valis_desktop.builtin.personas",
}
"""Plugins that ship inside the application, loaded through the same hooks as the others."""

SAFE_MODE_ENV = "VALIS_SAFE_MODE"

API_VERSION_ATTRIBUTE = "VALIS_API_VERSION"
"""A plugin module's ``(major, minor)`` plugin API version it was built for (optional)."""

_PROVIDER_ID = re.compile(PROVIDER_ID_PATTERN)


def safe_mode_from_env() -> bool:
    return os.environ.get(SAFE_MODE_ENV, "").strip().lower() not in ("", "0", "false", "no")


class PluginState(enum.StrEnum):
    LOADED = "loaded"
    DISABLED = "disabled"
    QUARANTINED = "quarantined"
    UNINSTALLED = "uninstalled"
    """Its distribution was removed while the application ran: its providers are gone, its
    code stays imported until a restart."""


class PluginLoadError(Exception):
    """Raised in strict mode instead of quarantining a plugin."""


@dataclass
class PluginRecord:
    name: str
    builtin: bool
    distribution: str = ""
    version: str = ""
    state: PluginState = PluginState.LOADED
    error: str = ""
    """The full traceback or message of a quarantined plugin."""
    providers: list[str] = field(default_factory=list)
    personas: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Configuration problems the plugin reported (it loaded, perhaps with less)."""
    hooks: list[str] = field(default_factory=list)
    """The hooks the plugin implements (known once it loaded)."""
    description: str = ""
    homepage: str = ""
    restart_note: str = ""
    """Why a restart is needed to finish a change (an update or removal while running)."""
    entry_point: EntryPoint | None = field(default=None, repr=False, compare=False)
    """Where a plugin installed as a distribution comes from, so that it can be enabled later."""

    @property
    def imported(self) -> bool:
        """Whether the plugin's module was imported: then it stays until a restart, whatever
        happens to the plugin (Python cannot unload a module)."""
        entry_point = self.entry_point
        return entry_point is not None and entry_point.module in sys.modules

    @property
    def error_summary(self) -> str:
        lines = [line for line in self.error.strip().splitlines() if line.strip()]
        return lines[-1] if lines else ""


class PluginHost:
    """A typed facade over pluggy that loads plugins and collects what they register."""

    def __init__(
        self,
        *,
        strict: bool = False,
        safe_mode: bool = False,
        disabled: Collection[str] = (),
        builtins: dict[str, str] | None = None,
        entry_points: Iterable[EntryPoint] | Callable[[], Iterable[EntryPoint]] | None = None,
        settings: Mapping[str, Mapping[str, Any]] | None = None,
        secrets: SecretReader | None = None,
    ) -> None:
        """``entry_points`` replaces the installed ones (a list, or a function that finds them
        again for ``discover``); ``settings`` maps plugin names to their tables of the settings
        file; ``secrets`` reads a plugin's secret: ``secrets(plugin, name)``."""
        self.strict = strict
        self._settings = settings or {}
        self._secrets = secrets or _no_secrets
        self.safe_mode = safe_mode
        self._disabled = frozenset(disabled)
        self._builtins = BUILTIN_PLUGINS if builtins is None else builtins
        self._entry_points = entry_points
        self._pm = pluggy.PluginManager(PROJECT_NAME)
        self._pm.add_hookspecs(HookSpecs)
        self.records: dict[str, PluginRecord] = {}
        self._manager: ProviderManager | None = None
        """Where providers were registered: a plugin quarantined later takes them out."""

    def load(self) -> None:
        """Load the built-ins, then (unless in safe mode) every entry point."""
        for name, module in self._builtins.items():
            record = PluginRecord(name, builtin=True)
            self._load(record, partial(importlib.import_module, module))
        if self.safe_mode:
            return
        for entry_point in self._find_entry_points():
            self._add_entry_point(entry_point)

    def discover(self, manager: ProviderManager) -> list[PluginRecord]:
        """Look at the installed distributions again (after ``pip install`` or ``uninstall``
        while the application runs) and return the records that changed:

        - a new plugin loads, and its providers join ``manager``;
        - a plugin whose distribution is gone leaves with its providers (answers in progress
          finish); if its code was imported it stays listed as uninstalled until a restart,
          else (disabled, or it failed at import) it is forgotten;
        - a plugin installed in another version loads it if none of its code is imported yet;
          else it keeps running the old code and says a restart will load the new one (and
          stops saying so if the old version comes back).

        Nothing happens in safe mode."""
        if self.safe_mode:
            return []
        importlib.invalidate_caches()
        found = {entry_point.name: entry_point for entry_point in self._find_entry_points()}
        changed: list[PluginRecord] = []
        for name, record in list(self.records.items()):
            if record.builtin or name in found or record.state is PluginState.UNINSTALLED:
                continue
            self._take_out(record, manager)
            if record.imported:
                record.state = PluginState.UNINSTALLED
                record.error = ""
                record.restart_note = (
                    "Its distribution was removed; its code stays loaded until Valis Desktop "
                    "restarts — restart to finish removing it."
                )
            else:
                del self.records[name]
            changed.append(record)
        for name, entry_point in found.items():
            known = self.records.get(name)
            if known is not None and known.builtin:
                continue
            version = _distribution(entry_point)[1]
            if known is None or not known.imported:
                if known is not None and version == known.version:
                    continue  # as it was (disabled, or failed at import)
                # New, or nothing of it imported yet: load the version installed now.
                self.records.pop(name, None)
                added = self._add_entry_point(entry_point)
                if added.state is PluginState.LOADED:
                    self.register_providers(manager, only={name})
                changed.append(added)
                continue
            if known.state is PluginState.UNINSTALLED and version == known.version:
                # Reinstalled as it was: its imported code is that version; use it again.
                known.state = PluginState.DISABLED
                known.restart_note = ""
                known.entry_point = entry_point
                if name not in self._disabled:
                    self.enable(name, manager)
                changed.append(known)
                continue
            note = (
                ""
                if version == known.version
                else f"Version {version} is installed; restart Valis Desktop to use it."
            )
            if note != known.restart_note:
                known.restart_note = note
                changed.append(known)
        return changed

    def _find_entry_points(self) -> Iterable[EntryPoint]:
        found = self._entry_points
        if found is None:
            return entry_points(group=ENTRY_POINT_GROUP)
        return found() if callable(found) else found

    def _add_entry_point(self, entry_point: EntryPoint) -> PluginRecord:
        distribution, version = _distribution(entry_point)
        record = PluginRecord(
            entry_point.name,
            builtin=False,
            distribution=distribution,
            version=version,
            entry_point=entry_point,
        )
        record.description, record.homepage = _about(entry_point)
        if entry_point.name in self._disabled:
            record.state = PluginState.DISABLED
            self.records.setdefault(record.name, record)
            return self.records[record.name]
        self._load(record, entry_point.load)
        return record

    def enable(self, name: str, manager: ProviderManager) -> PluginRecord:
        """Load the disabled or quarantined plugin ``name`` now (a quarantined one: try again)
        and add its providers to ``manager``. A plugin that fails to load or to register is
        quarantined as at start-up (strict mode raises); the others are untouched. Enabling a
        loaded plugin does nothing. Returns its record."""
        record = self._record(name)
        self._disabled = self._disabled - {name}
        if record.state not in (PluginState.DISABLED, PluginState.QUARANTINED):
            return record
        if record.entry_point is None:
            raise ValueError(f"plugin {name!r} cannot be loaded: it has no entry point")
        self._take_out(record, manager)
        record.state = PluginState.LOADED
        record.error = ""
        record.hooks.clear()
        self._load(record, record.entry_point.load, again=True)
        if record.state is PluginState.LOADED:
            self.register_providers(manager, only={name})
        return record

    def disable(self, name: str, manager: ProviderManager) -> PluginRecord:
        """Take the plugin ``name`` out: its providers leave ``manager`` (answers in progress
        finish first) and its hooks are no longer called. Python cannot unload its module: that
        stays imported until the application restarts. Built-in plugins cannot be disabled."""
        record = self._record(name)
        if record.builtin:
            raise ValueError(f"{name!r} is a built-in plugin and cannot be disabled")
        self._disabled = self._disabled | {name}
        self._take_out(record, manager)
        record.state = PluginState.DISABLED
        record.error = ""
        return record

    def quarantine_running(
        self, name: str, manager: ProviderManager, error: BaseException
    ) -> PluginRecord | None:
        """A provider of the plugin ``name`` raised something no provider should while
        answering (a bug): take the plugin out with its providers and keep the traceback, as
        for a plugin that fails to load. Built-in plugins are left alone. Returns the record,
        or ``None`` if nothing was done."""
        record = self.records.get(name)
        if record is None or record.builtin or record.state is not PluginState.LOADED:
            return None
        self._take_out(record, manager)
        record.state = PluginState.QUARANTINED
        record.error = "It raised this while answering:\n" + _describe(error)
        log.warning(
            "plugin %r quarantined: it raised %s while answering", name, type(error).__name__
        )
        return record

    def _take_out(self, record: PluginRecord, manager: ProviderManager | None) -> None:
        """Remove the plugin's providers from ``manager`` and stop calling its hooks."""
        self._remove_providers(record, manager)
        record.personas.clear()
        if self._pm.has_plugin(record.name):
            self._pm.unregister(name=record.name)

    @staticmethod
    def _remove_providers(record: PluginRecord, manager: ProviderManager | None) -> None:
        """Its providers leave ``manager`` (answers in progress finish first)."""
        for provider_id in record.providers:
            if manager is not None and provider_id in manager.provider_ids:
                manager.remove_provider(provider_id)
        record.providers.clear()
        record.problems.clear()

    def _record(self, name: str) -> PluginRecord:
        try:
            return self.records[name]
        except KeyError:
            raise ValueError(f"there is no plugin named {name!r}") from None

    def refresh_providers(
        self,
        manager: ProviderManager,
        plugins: Collection[str],
        settings: Mapping[str, Mapping[str, Any]],
    ) -> None:
        """The user changed the settings: ask ``plugins`` for their providers again, with their
        new ``settings`` tables and secrets. Their old providers leave ``manager`` (answers in
        progress finish first) and the new ones take their place, with fresh breakers."""
        self._settings = settings
        refreshed = [self.records[name] for name in plugins if name in self.records]
        for record in refreshed:
            self._remove_providers(record, manager)
        self.register_providers(manager, only={record.name for record in refreshed})

    def register_providers(
        self, manager: ProviderManager, *, only: Collection[str] | None = None
    ) -> None:
        """Add every loaded plugin's providers to ``manager`` (or those of the plugins named)."""

        self._manager = manager
        taken = set(manager.provider_ids)

        def accept(record: PluginRecord, provider: object) -> Provider:
            if not isinstance(provider, Provider):
                raise TypeError(f"register() takes a Provider, not {type(provider).__name__}")
            if not isinstance(provider.id, str) or not _PROVIDER_ID.match(provider.id):
                raise ValueError(
                    f"provider id {getattr(provider, 'id', None)!r} is not valid: use 1–64 "
                    "lower-case letters, digits, '.', '_' or '-'"
                )
            if provider.id in taken:
                raise ValueError(f"provider id {provider.id!r} is already taken")
            taken.add(provider.id)
            return provider

        for record, providers in self._collect("register_providers", accept, only):
            for provider in providers:
                manager.add_provider(provider, plugin=record.name)
                record.providers.append(provider.id)

    def personas(self) -> list[tuple[PluginRecord, Persona]]:
        """Every persona the loaded plugins register, with its plugin, in load order. Ids are
        the plugins' own: the persona library namespaces them and settles collisions."""

        def accept(record: PluginRecord, persona: object) -> Persona:
            if not isinstance(persona, Persona):
                raise TypeError(f"register() takes a Persona, not {type(persona).__name__}")
            return persona

        result: list[tuple[PluginRecord, Persona]] = []
        for record, personas in self._collect("register_personas", accept):
            record.personas[:] = [persona.id for persona in personas]
            result.extend((record, persona) for persona in personas)
        return result

    def settings_forms(self) -> list[SettingsForm]:
        """The Settings dialog's forms that loaded plugins register, one per plugin at most."""
        seen: set[str] = set()

        def accept(record: PluginRecord, form: object) -> SettingsForm:
            if not isinstance(form, SettingsForm):
                raise TypeError(f"register() takes a SettingsForm, not {type(form).__name__}")
            if form.plugin != record.name:
                raise ValueError(f"a settings form for {form.plugin!r} from plugin {record.name!r}")
            if form.plugin in seen:
                raise ValueError(f"plugin {record.name!r} registered two settings forms")
            seen.add(form.plugin)
            return form

        return [
            form for _, forms in self._collect("register_settings_forms", accept) for form in forms
        ]

    @property
    def quarantined(self) -> list[PluginRecord]:
        return [r for r in self.records.values() if r.state is PluginState.QUARANTINED]

    def _load(
        self, record: PluginRecord, loader: Callable[[], object], *, again: bool = False
    ) -> None:
        """Load and register one plugin; ``again`` for one the host knows (being enabled)."""
        if not again and record.name in self.records:
            self._quarantine(record, f"another plugin is already named {record.name!r}")
            return
        self.records[record.name] = record
        try:
            plugin = loader()
        except Exception as error:
            self._quarantine(record, _describe(error), error)
            return
        refusal = api_version_refusal(getattr(plugin, API_VERSION_ATTRIBUTE, None))
        if refusal:
            self._quarantine(record, refusal)
            return
        if not record.description:
            record.description = _first_line(getattr(plugin, "__doc__", None) or "")
        try:
            self._pm.register(plugin, name=record.name)
        except Exception as error:
            self._quarantine(record, _describe(error), error)
            return
        record.hooks = sorted(caller.name for caller in self._pm.get_hookcallers(plugin) or ())

    def _collect(
        self,
        hook_name: str,
        accept: Callable[[PluginRecord, object], Any],
        only: Collection[str] | None = None,
    ) -> list[tuple[PluginRecord, list[Any]]]:
        """Call one hook plugin by plugin, so that one raising cannot stop the others; what a
        plugin registered counts only if its whole hook call succeeded."""
        caller = getattr(self._pm.hook, hook_name)
        results = []
        for impl in caller.get_hookimpls():  # in registration order
            record = self.records[impl.plugin_name]
            if record.state is not PluginState.LOADED or (
                only is not None and record.name not in only
            ):
                continue
            accepted: list[Any] = []

            def register(
                item: object, record: PluginRecord = record, accepted: list[Any] = accepted
            ) -> None:
                accepted.append(accept(record, item))

            arguments = {"register": register, "context": self._context(record)}
            try:
                impl.function(**{name: arguments[name] for name in impl.argnames})
            except Exception as error:
                self._quarantine(record, _describe(error), error)
                continue
            results.append((record, accepted))
        return results

    def _context(self, record: PluginRecord) -> PluginContext:
        def problem(message: str) -> None:
            log.warning("plugin %r: %s", record.name, message)
            record.problems.append(message)

        return PluginContext(
            plugin=record.name,
            settings=self._settings.get(record.name, {}),
            secret=partial(self._secrets, record.name),
            problem=problem,
        )

    def _quarantine(
        self, record: PluginRecord, message: str, error: BaseException | None = None
    ) -> None:
        if self.strict:
            raise PluginLoadError(f"plugin {record.name!r}: {message}") from error
        log.warning("plugin %r quarantined: %s", record.name, message.strip().splitlines()[-1])
        record.state = PluginState.QUARANTINED
        record.error = message
        if self.records.setdefault(record.name, record) is record:
            self._take_out(record, self._manager)


def api_version_refusal(declared: object, supported: tuple[int, int] = API_VERSION) -> str:
    """Why a plugin declaring ``VALIS_API_VERSION = declared`` cannot load, or ``""`` if it can
    (also when it declares nothing)."""
    if declared is None:
        return ""
    if (
        not isinstance(declared, tuple | list)
        or len(declared) != 2
        or not all(isinstance(part, int) and not isinstance(part, bool) for part in declared)
    ):
        return (
            f"{API_VERSION_ATTRIBUTE} must be a (major, minor) tuple of integers, not {declared!r}"
        )
    major, minor = declared
    if (major, minor) <= tuple(supported):
        return ""
    range_ = f"{supported[0]}.x" if major > supported[0] else f"up to {supported[0]}.{supported[1]}"
    return (
        f"built for plugin API {major}.{minor}; this Valis Desktop supports {range_} — "
        "update Valis Desktop or use an older version of the plugin"
    )


SecretReader = Callable[[str, str], "str | None"]


def _no_secrets(plugin: str, name: str) -> str | None:
    return None


def _distribution(entry_point: EntryPoint) -> tuple[str, str]:
    dist = entry_point.dist
    return (dist.name, dist.version) if dist is not None else ("", "")


_HOMEPAGE_LABELS = ("homepage", "home", "documentation", "source", "repository")


def _about(entry_point: EntryPoint) -> tuple[str, str]:
    """The distribution's one-line summary and its home page, from its metadata."""
    dist = entry_point.dist
    if dist is None:
        return "", ""
    metadata = dist.metadata
    summary = metadata["Summary"].strip() if "Summary" in metadata else ""
    urls: dict[str, str] = {}
    for entry in metadata.get_all("Project-URL") or []:
        label, _, url = entry.partition(",")
        urls.setdefault(label.strip().lower(), url.strip())
    homepage = next((urls[label] for label in _HOMEPAGE_LABELS if label in urls), "")
    if not homepage and "Home-page" in metadata:
        homepage = metadata["Home-page"].strip()
    return summary, homepage


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.strip().splitlines() if line.strip()), "")


def _describe(error: BaseException) -> str:
    return "".join(traceback.format_exception(error))
