"""The settings file: ``settings.toml`` in the platform's config directory, validated by pydantic.

A file with an invalid field never resets anything: that field takes its default, the problem
is reported (which field, why, what is used instead), and the file is left as it is. Secrets are
never stored here (see ``core/secrets.py``).

```toml
[engine]
global_limit = 10            # provider calls at once, across all chats
first_chunk_timeout = 60     # seconds to the first text of an answer
gap_timeout = 60             # seconds of silence allowed mid-answer
queue_limit = 32             # messages that may wait in one chat
default_chain = ["local", "fallback"]

[engine.breaker]
failure_threshold = 3
base_open_seconds = 10
max_open_seconds = 300

[providers.local]
limit = 1                    # answers at once from this provider

[plugins]
disabled = ["some-plugin"]

[plugins.openai]             # each plugin's own table, validated by the plugin
instances = [
  { id = "ollama", name = "Ollama", base_url = "http://127.0.0.1:11434/v1", model = "llama3.2" },
]
```
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs
import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from valis_desktop.core.circuit_breaker import BreakerConfig
from valis_desktop.core.defaults import DEFAULT_CHAIN
from valis_desktop.core.provider_manager import EngineConfig
from valis_desktop.core.session import DEFAULT_MAX_QUEUE

log = logging.getLogger(__name__)

APP_NAME = "valis-desktop"
SETTINGS_ENV = "VALIS_SETTINGS"
"""An environment variable naming another settings file (tests, portable use)."""


class BreakerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    failure_threshold: int = Field(3, ge=1, le=100)
    base_open_seconds: float = Field(10.0, gt=0, le=3600)
    max_open_seconds: float = Field(300.0, gt=0, le=86400)


class EngineSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    global_limit: int = Field(10, ge=1, le=1000)
    first_chunk_timeout: float = Field(60.0, gt=0, le=3600)
    gap_timeout: float = Field(60.0, gt=0, le=3600)
    queue_limit: int = Field(DEFAULT_MAX_QUEUE, ge=1, le=10_000)
    default_chain: list[str] = Field(
        default_factory=lambda: list(DEFAULT_CHAIN), min_length=1, max_length=32
    )
    breaker: BreakerSettings = BreakerSettings()


class ProviderSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int | None = Field(None, ge=1, le=1000)


class PluginsSettings(BaseModel):
    model_config = ConfigDict(extra="allow")  # the plugins' own tables

    disabled: list[str] = []


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    engine: EngineSettings = EngineSettings()
    providers: dict[str, ProviderSettings] = {}
    plugins: PluginsSettings = PluginsSettings()

    def engine_config(self) -> EngineConfig:
        engine = self.engine
        return EngineConfig(
            global_limit=engine.global_limit,
            first_chunk_timeout=engine.first_chunk_timeout,
            gap_timeout=engine.gap_timeout,
            breaker=BreakerConfig(
                failure_threshold=engine.breaker.failure_threshold,
                base_open_seconds=engine.breaker.base_open_seconds,
                max_open_seconds=engine.breaker.max_open_seconds,
            ),
        )

    def plugin_tables(self) -> dict[str, Mapping[str, Any]]:
        """Each plugin's own table, by plugin name."""
        extra = self.plugins.model_extra or {}
        return {name: table for name, table in extra.items() if isinstance(table, Mapping)}

    def provider_limits(self) -> dict[str, int]:
        return {pid: p.limit for pid, p in self.providers.items() if p.limit is not None}


@dataclass
class LoadedSettings:
    settings: Settings
    path: Path
    problems: list[str] = field(default_factory=list)
    """What was wrong with the file and what is used instead; empty when all is well."""


def settings_path() -> Path:
    override = os.environ.get(SETTINGS_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / "settings.toml"


def load_settings(path: Path | None = None) -> LoadedSettings:
    """Read and validate the settings file; never raises for a bad or missing file."""
    path = path or settings_path()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return LoadedSettings(Settings(), path)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        problem = f"{path} could not be read ({error}); using the default settings."
        log.warning("%s", problem)
        return LoadedSettings(Settings(), path, [problem])
    settings, problems = validate_leniently(raw)
    for problem in problems:
        log.warning("settings: %s", problem)
    return LoadedSettings(settings, path, [f"{path}: {p}" for p in problems])


def read_raw(path: Path | None = None) -> dict[str, Any]:
    """The settings file as written (for editing), or ``{}`` when missing or unreadable."""
    try:
        return tomllib.loads((path or settings_path()).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}


def save_settings(raw: Mapping[str, Any], path: Path | None = None) -> Settings:
    """Validate ``raw`` strictly and write it atomically; raises ``ValidationError`` (and
    writes nothing) if any field is invalid. Comments in the old file are not kept; an old
    file that cannot be read (broken TOML) is kept beside it, renamed, never overwritten."""
    settings = Settings.model_validate(raw)
    path = path or settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    _keep_if_unreadable(path)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(tomli_w.dumps(dict(raw)), encoding="utf-8")
    os.replace(temporary, path)
    return settings


def _keep_if_unreadable(path: Path) -> None:
    """Move a settings file that does not parse aside (``settings.toml.unreadable-N``), so that
    writing new settings loses nothing the user wrote."""
    try:
        tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        number = 1
        while (kept := path.with_name(f"{path.name}.unreadable-{number}")).exists():
            number += 1
        os.replace(path, kept)
        log.warning("the settings file could not be read; it was kept as %s", kept)


def validate_leniently(raw: dict[str, Any]) -> tuple[Settings, list[str]]:
    """Validate ``raw``; each invalid field falls back to its default and is reported."""
    problems: list[str] = []
    for _ in range(100):  # each round removes at least one bad field
        try:
            return Settings.model_validate(raw), problems
        except ValidationError as invalid:
            for error in invalid.errors():
                where = ".".join(str(part) for part in error["loc"])
                problems.append(
                    f"{where}: {error['msg']} (found {error.get('input')!r}); "
                    "using the default instead"
                )
                raw = _without(raw, error["loc"])
    return Settings(), [*problems, "too many problems; using the default settings"]


def _without(raw: Any, loc: tuple[int | str, ...]) -> Any:
    """A copy of ``raw`` without the value at ``loc`` (its deepest existing parent's key)."""
    if not loc or not isinstance(raw, dict) or loc[0] not in raw:
        return raw
    copy = dict(raw)
    key = loc[0]
    if len(loc) == 1 or not isinstance(copy[key], dict | list):
        del copy[key]
    elif isinstance(copy[key], list):
        del copy[key]  # a list with a bad item is replaced whole by its default
    else:
        inner = _without(copy[key], loc[1:])
        if inner == copy[key]:
            del copy[key]
        else:
            copy[key] = inner
    return copy
