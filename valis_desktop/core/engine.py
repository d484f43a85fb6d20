"""The headless engine: plugins loaded, providers registered, personas known.

Front ends (the terminal chat, the window) build one ``Engine`` and open sessions on it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from valis_desktop.api import Message, Persona
from valis_desktop.core import secrets
from valis_desktop.core.defaults import DEFAULT_PERSONA
from valis_desktop.core.personas import PersonaLibrary
from valis_desktop.core.plugins import PluginHost, PluginRecord
from valis_desktop.core.provider_manager import ProviderManager
from valis_desktop.core.session import Session
from valis_desktop.core.settings import Settings, read_raw, save_settings
from valis_desktop.core.settings import settings_path as default_settings_path

log = logging.getLogger(__name__)


@dataclass
class Engine:
    host: PluginHost
    manager: ProviderManager
    personas: dict[str, Persona]
    """Every persona by id: the library's own dict when the engine was started with one, so
    personas the user saves or deletes appear and disappear here at once."""
    settings: Settings = field(default_factory=Settings)
    sessions: list[Session] = field(default_factory=list)
    library: PersonaLibrary | None = None
    settings_path: Path | None = None
    """The settings file that changes made here are saved to (the user's when ``None``)."""
    on_plugin_quarantined: Callable[[PluginRecord], None] | None = None
    """Told when a plugin was taken out because a provider of it raised something no provider
    should while answering (a bug in it; see ``PluginHost.quarantine_running``)."""

    def __post_init__(self) -> None:
        self.manager.on_plugin_fault = self._plugin_faulted
        self._closed = False

    def _plugin_faulted(self, plugin: str, provider_id: str, error: BaseException) -> None:
        if self._closed:
            return  # the providers are closed already
        record = self.host.quarantine_running(plugin, self.manager, error)
        if record is None:
            return
        self._plugins_changed()
        if self.on_plugin_quarantined is not None:
            self.on_plugin_quarantined(record)

    @classmethod
    def start(
        cls,
        *,
        settings: Settings | None = None,
        safe_mode: bool = False,
        strict: bool = False,
        host: PluginHost | None = None,
        library: PersonaLibrary | None = None,
        settings_path: Path | None = None,
    ) -> Engine:
        """Load the plugins and the personas (``library`` reads the user's from the platform
        data directory unless given one), and register the providers."""
        settings = settings or Settings()
        host = host or PluginHost(
            safe_mode=safe_mode,
            strict=strict,
            disabled=settings.plugins.disabled,
            settings=settings.plugin_tables(),
            secrets=secrets.read_secret,
        )
        host.load()
        manager = ProviderManager(settings.engine_config())
        host.register_providers(manager)
        library = library or PersonaLibrary()
        library.load(host)
        engine = cls(
            host,
            manager,
            library.personas,
            settings,
            library=library,
            settings_path=settings_path,
        )
        engine._apply_provider_limits()
        return engine

    def _apply_provider_limits(self) -> None:
        """The user's per-provider limits, for the providers registered now."""
        for provider_id, limit in self.settings.provider_limits().items():
            if provider_id in self.manager.provider_ids:
                self.manager.set_limit(provider_id, limit)

    def _plugins_changed(self) -> None:
        """Plugins came or went: their providers' limits, and their personas."""
        self._apply_provider_limits()
        if self.library is not None:
            self.library.load(self.host)

    def discover_plugins(self) -> list[PluginRecord]:
        """Plugins were installed or removed while running (see ``PluginHost.discover``): new
        ones load with their providers and personas, removed ones leave. Returns the records
        that changed."""
        changed = self.host.discover(self.manager)
        if changed:
            self._plugins_changed()
        return changed

    def apply_settings(self, settings: Settings) -> None:
        """Use new settings without a restart: limits, timeouts and breaker parameters at once
        (see ``ProviderManager.reconfigure``), the queue limit for open chats too, the default
        chain for new chats. Plugins with a settings form register their providers again, so
        added, changed and removed instances (and new keys) take effect now."""
        self.settings = settings
        configurable = {form.plugin for form in self.host.settings_forms()}
        self.host.refresh_providers(self.manager, configurable, settings.plugin_tables())
        self.manager.reconfigure(settings.engine_config(), settings.provider_limits())
        for session in self.sessions:
            session.max_queue = settings.engine.queue_limit

    def set_plugin_enabled(self, name: str, enabled: bool) -> PluginRecord:
        """Enable or disable the plugin ``name`` now (its providers join or leave the manager;
        see ``PluginHost.enable`` and ``disable``) and remember it in ``plugins.disabled`` of the
        settings file. Raises ``ValueError`` for an unknown or built-in plugin, before anything
        changes, and ``ValueError`` (pydantic's ``ValidationError``) or ``OSError`` if the
        settings file cannot be saved; then the change holds until the application quits.

        Its personas come and go with it. Python cannot unload a plugin's code: a disabled
        plugin's module stays imported until a restart."""
        record = (
            self.host.enable(name, self.manager)
            if enabled
            else self.host.disable(name, self.manager)
        )
        self._plugins_changed()
        listed = [n for n in self.settings.plugins.disabled if n != name]
        if not enabled:
            listed.append(name)
        self.settings = self.settings.model_copy(
            update={"plugins": self.settings.plugins.model_copy(update={"disabled": listed})}
        )
        path = self.settings_path or default_settings_path()
        raw = read_raw(path)
        plugins = dict(raw.get("plugins") or {})
        before = [str(n) for n in plugins.get("disabled") or []]
        saved = [n for n in before if n != name] + ([] if enabled else [name])
        if sorted(saved) != sorted(before):
            plugins["disabled"] = saved
            raw["plugins"] = plugins
            save_settings(raw, path)
        return record

    def warm_up(self, chain: Sequence[str]) -> None:
        """The user started writing a message for ``chain``: let its first installed provider
        start what takes long (``Provider.warm_up``). A provider failing at it is logged."""
        for provider_id in chain:
            if provider_id in self.manager.provider_ids:
                provider = self.manager.provider(provider_id)
                try:
                    provider.warm_up()
                except Exception:
                    log.exception("provider %r failed to warm up", provider_id)
                return

    @property
    def default_chain(self) -> tuple[str, ...]:
        return tuple(self.settings.engine.default_chain)

    def persona(self, persona_id: str | None = None) -> Persona | None:
        return self.personas.get(persona_id or DEFAULT_PERSONA)

    def open_session(
        self,
        *,
        chain: Sequence[str] | None = None,
        persona_id: str | None = None,
        session_id: str | None = None,
        history: Iterable[Message] = (),
    ) -> Session:
        """A new chat, or (with ``session_id`` and ``history``) a restored one. Without
        ``chain`` it uses the persona's default chain, if it has one, else the user's."""
        persona = self.persona(persona_id)
        if chain is None:
            chain = (persona.default_chain if persona else ()) or self.default_chain
        session = Session(
            self.manager,
            chain=chain,
            persona=persona,
            session_id=session_id,
            history=history,
            max_queue=self.settings.engine.queue_limit,
        )
        self.sessions.append(session)
        return session

    async def close_session(self, session: Session) -> None:
        await session.aclose()
        self.sessions.remove(session)

    async def aclose(self) -> None:
        """Stop every session, then close the providers."""
        while self.sessions:
            await self.close_session(self.sessions[-1])
        self._closed = True
        await self.manager.aclose()
