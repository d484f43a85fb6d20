"""The headless engine: plugins loaded, providers registered, personas known.

Front ends (the terminal chat, the window) build one ``Engine`` and open sessions on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from valis_desktop.api import Persona
from valis_desktop.core.defaults import DEFAULT_CHAIN, DEFAULT_PERSONA
from valis_desktop.core.plugins import PluginHost
from valis_desktop.core.provider_manager import EngineConfig, ProviderManager
from valis_desktop.core.session import Session


@dataclass
class Engine:
    host: PluginHost
    manager: ProviderManager
    personas: dict[str, Persona]
    sessions: list[Session] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        *,
        safe_mode: bool = False,
        strict: bool = False,
        config: EngineConfig | None = None,
        host: PluginHost | None = None,
    ) -> Engine:
        host = host or PluginHost(safe_mode=safe_mode, strict=strict)
        host.load()
        manager = ProviderManager(config)
        host.register_providers(manager)
        personas = {persona.id: persona for persona in host.personas()}
        return cls(host, manager, personas)

    def persona(self, persona_id: str | None = None) -> Persona | None:
        return self.personas.get(persona_id or DEFAULT_PERSONA)

    def open_session(
        self, *, chain: Sequence[str] = DEFAULT_CHAIN, persona_id: str | None = None
    ) -> Session:
        session = Session(self.manager, chain=chain, persona=self.persona(persona_id))
        self.sessions.append(session)
        return session

    async def close_session(self, session: Session) -> None:
        await session.aclose()
        self.sessions.remove(session)

    async def aclose(self) -> None:
        """Stop every session, then close the providers."""
        while self.sessions:
            await self.close_session(self.sessions[-1])
        await self.manager.aclose()
