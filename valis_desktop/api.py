"""The public plugin API of Valis Desktop.

Everything a provider plugin may import lives here and nowhere else. Changes to this module are
additive; ``API_VERSION`` tells plugins which surface they run against:

- 1.0: providers, personas, settings forms, the errors and the HTTP helpers.
- 1.1: ``Provider.warm_up()``, called when the user is about to ask the provider;
  ``HttpInstance``, the settings every HTTP endpoint has; ``PluginContext.api_key()``;
  ``shorten()``, ``redact()`` and ``ProviderError.redacted()`` for messages shown to the user;
  ``HttpTimeouts.expired()``; ``import_in_thread()``.

A plugin is a module (or any object) exposing hook implementations, announced through the entry
point group ``valis_desktop.plugins``::

    from valis_desktop.api import ChatRequest, Provider, hookimpl

    class Echo(Provider):
        id = "echo"
        display_name = "Echo"

        async def stream(self, request: ChatRequest):
            yield request.messages[-1].content

    @hookimpl
    def register_providers(register):
        register(Echo())
"""

from __future__ import annotations

import abc
import asyncio
import email.utils
import enum
import importlib
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from types import ModuleType
from typing import Any, Self, TypeAlias, TypeVar
from urllib.parse import urlsplit

import pluggy
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = [
    "API_VERSION",
    "ENTRY_POINT_GROUP",
    "ENV_NAME_PATTERN",
    "MESSAGE_LIMIT",
    "PROJECT_NAME",
    "PROVIDER_ID_PATTERN",
    "AuthError",
    "ChatRequest",
    "ConnectionCheck",
    "ConnectionTester",
    "GenerationParams",
    "HttpInstance",
    "HttpTimeouts",
    "InvalidRequestError",
    "Message",
    "NeedsAttentionError",
    "Persona",
    "PluginContext",
    "Progress",
    "Provider",
    "ProviderError",
    "RateLimitedError",
    "RegisterPersona",
    "RegisterProvider",
    "RegisterSettingsForm",
    "Role",
    "SettingsForm",
    "StreamItem",
    "TransientError",
    "Usage",
    "describe_invalid",
    "error_for_status",
    "hookimpl",
    "hookspec",
    "import_in_thread",
    "redact",
    "refuse_credential_headers",
    "refuse_secrets",
    "retry_after_seconds",
    "shorten",
]

API_VERSION = (1, 1)
"""(major, minor): a plugin built for a newer major version cannot run here."""

PROJECT_NAME = "valis_desktop"
ENTRY_POINT_GROUP = "valis_desktop.plugins"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class Role(enum.StrEnum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


class Message(BaseModel):
    """One turn of a conversation, as sent to a provider."""

    model_config = ConfigDict(frozen=True)

    role: Role
    content: str


class GenerationParams(BaseModel):
    """Sampling parameters; ``None`` leaves the provider's default."""

    model_config = ConfigDict(frozen=True)

    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, ge=1)


class Persona(BaseModel):
    """The voice a chat session speaks in.

    ``default_chain`` is the provider chain a new chat with this persona starts with (empty: the
    user's default chain); ``params`` are its sampling parameters (``None``: the providers'
    defaults); ``colour`` is a ``#rrggbb`` accent for the user interface, or empty.
    """

    model_config = ConfigDict(frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.:-]*$", max_length=80)
    name: str = Field(min_length=1, max_length=80)
    description: str = ""
    system_prompt: str = ""
    greeting: str = ""
    default_chain: tuple[str, ...] = ()
    params: GenerationParams | None = None
    colour: str = Field(default="", pattern=r"^(#[0-9a-fA-F]{6})?$")


class ChatRequest(BaseModel):
    """What a provider is asked to answer.

    ``messages`` is the whole context, oldest first: the persona's system prompt (if any), the
    session's history (as many of the newest turns as fit the provider's ``context_tokens``,
    with a system note saying how many earlier messages were left out), and last the user's new
    message. A provider sees only its own session's messages.
    """

    model_config = ConfigDict(frozen=True)

    request_id: str
    session_id: str
    messages: tuple[Message, ...]
    persona: Persona | None = None
    model: str | None = None
    params: GenerationParams = GenerationParams()

    @property
    def prompt(self) -> str:
        """The newest user message (empty if there is none)."""
        for message in reversed(self.messages):
            if message.role is Role.USER:
                return message.content
        return ""


class Usage(BaseModel):
    """Token counts a provider reports at the end of an answer, when it knows them."""

    model_config = ConfigDict(frozen=True)

    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class Progress(BaseModel):
    """Shown to the user while no text flows yet, e.g. "loading model…". Not part of the answer;
    it proves the provider is alive, so the first-chunk timeout starts again."""

    model_config = ConfigDict(frozen=True)

    message: str


StreamItem: TypeAlias = str | Usage | Progress
"""What a provider's stream yields: text chunks (``str``), ``Progress`` notes before the text,
and optionally, usually last, a ``Usage``."""


class Provider(abc.ABC):
    """A model back end.

    Subclasses set ``id`` (stable, lower case, used in chains and settings), ``display_name`` and
    optionally ``description``, ``default_concurrency`` (how many answers it may produce at
    once unless the user configures otherwise) and ``context_tokens``, and implement ``stream``.

    The manager owns retries, fallbacks and timeouts: a provider makes one attempt and raises one
    of the ``ProviderError`` classes below when it fails. Stopping an answer closes the stream
    (the async generator receives ``GeneratorExit`` or ``CancelledError``): release what you hold
    in a ``finally`` block.
    """

    id: str
    display_name: str
    description: str = ""
    default_concurrency: int = 4
    context_tokens: int | None = None
    """How many tokens the provider's model reads at most, prompt and answer together; ``None``
    if unknown (the engine then assumes a modest default). The engine trims old turns of the
    conversation to fit."""

    @abc.abstractmethod
    def stream(self, request: ChatRequest) -> AsyncIterator[StreamItem]:
        """Yield the answer to ``request`` as text chunks, then optionally a ``Usage``."""

    def warm_up(self) -> None:
        """The user is probably about to ask this provider (they started typing in a chat whose
        chain begins with it): start what takes long — loading a model, opening a connection —
        without waiting for it, so that the answer comes sooner. Called on the event loop, may
        be called again at any time, must return at once; by default it does nothing."""

    async def aclose(self) -> None:
        """Release connections, processes and models. Called once, at shutdown."""


class ProviderError(Exception):
    """Base of the errors a provider raises; ``message`` is shown to the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def redacted(self, secret: str | None) -> Self:
        """This error with ``secret`` (an API key a server echoed back, say) removed from its
        message."""
        message = redact(self.message, secret)
        if message != self.message:
            self.message = message
            self.args = (message, *self.args[1:])
        return self


async def import_in_thread(module: str) -> ModuleType:
    """Import ``module`` on a worker thread, unless it is imported already: for a plugin's
    module built on a large SDK, so that neither start-up nor the event loop pays for it."""
    loaded = sys.modules.get(module)
    if loaded is not None:
        return loaded
    return await asyncio.to_thread(importlib.import_module, module)


MESSAGE_LIMIT = 300
"""The longest error message, in characters, worth showing in a chat."""


def shorten(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` on one line (whitespace runs become one space), cut to ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def redact(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced by "[API key]"."""
    return text.replace(secret, "[API key]") if secret else text


class TransientError(ProviderError):
    """Worth trying elsewhere or later: 5xx, connection lost, a broken or malformed stream.

    Counts as a failure for the provider's circuit breaker; the request moves on along its chain
    if nothing was streamed yet.
    """


class RateLimitedError(ProviderError):
    """The provider asked us to slow down (HTTP 429).

    ``retry_after`` is the server's Retry-After in seconds, if it sent one; the provider is left
    alone for that long.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NeedsAttentionError(ProviderError):
    """The provider cannot work until the user acts: a missing model file, a wrong key.

    The provider is marked "needs attention" and skipped until its settings change or the user
    resets it. The message must say what to do.
    """


class AuthError(NeedsAttentionError):
    """Authentication or billing failed (401, 402, 403)."""


class InvalidRequestError(ProviderError):
    """The request itself is unacceptable (400, 413, 422): shown to the user, not retried."""


def error_for_status(
    status: int, message: str, headers: Mapping[str, str], name: str
) -> ProviderError:
    """The error for an HTTP error status from the provider called ``name``, by the outcome
    table: 429 rate limited (with Retry-After), 401/402/403 auth or billing, 404 a wrong address
    or model, 400/413/422 an invalid request, anything else transient. ``message`` is what the
    server said (already shortened)."""
    said = f": {message}" if message else ""
    if status == 429:
        return RateLimitedError(
            f"{name} is rate limiting requests (HTTP 429){said}", retry_after_seconds(headers)
        )
    if status in (401, 403):
        return AuthError(
            f"{name} refused the API key (HTTP {status}){said}. "
            "Check the key for this provider in Settings."
        )
    if status == 402:
        return AuthError(
            f"{name} asks for payment (HTTP 402){said}. Check the account's billing, and the "
            "key for this provider in Settings."
        )
    if status in (400, 413, 422):
        return InvalidRequestError(f"{name} rejected the request (HTTP {status}){said}")
    if status == 404:
        return NeedsAttentionError(
            f"{name} does not know this address or model (HTTP 404){said}. Check the base URL "
            "and the model name of this provider in Settings."
        )
    return TransientError(f"{name} failed (HTTP {status}){said}")


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            return max(0.0, float(milliseconds) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


RegisterProvider: TypeAlias = Callable[[Provider], None]
RegisterPersona: TypeAlias = Callable[[Persona], None]


PROVIDER_ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
"""What the application accepts as a provider id."""
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
"""A valid environment variable name (for a key read from the environment)."""

_SECRET_FIELDS = frozenset({"key", "api_key", "apikey", "token", "secret", "password"})

InstanceModel = TypeVar("InstanceModel", bound=BaseModel)


def refuse_secrets(data: Any) -> Any:
    """A ``model_validator(mode="before")`` for instance models: API keys belong in the
    keychain, never in the settings file."""
    if isinstance(data, Mapping):
        for name in data:
            if isinstance(name, str) and name.lower() in _SECRET_FIELDS:
                raise ValueError(
                    f"API keys never go in the settings file: remove '{name}' and store the "
                    "key in Settings (it is kept in the system keychain)"
                )
    return data


def describe_invalid(error: ValidationError) -> str:
    """Which fields are wrong and why, without their values (a value may be a secret)."""
    parts = []
    for problem in error.errors(include_url=False, include_input=False, include_context=False):
        where = ".".join(str(part) for part in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


class HttpTimeouts(BaseModel):
    """Seconds, for an instance that talks HTTP. The application's own timeouts (Settings,
    Engine) apply as well."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    connect: float = Field(10.0, gt=0, le=600)
    """Seconds to open a connection to the server."""
    first_byte: float = Field(60.0, gt=0, le=3600)
    """Seconds from sending a message to the first words of the answer (a long conversation
    takes a while to read)."""
    read: float = Field(60.0, gt=0, le=3600)
    """The longest pause, in seconds, in the middle of an answer."""

    def expired(self, name: str, *, started: bool) -> TransientError:
        """The error for the endpoint called ``name`` when a timeout ran out: ``first_byte``
        before the answer ``started``, else ``read``."""
        if started:
            return TransientError(
                f"{name} stopped sending for {self.read:g} s in the middle of the answer."
            )
        return TransientError(f"{name} sent no answer within {self.first_byte:g} s.")


_CREDENTIAL_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "api-key", "x-api-key", "cookie"}
)


def refuse_credential_headers(headers: dict[str, str]) -> dict[str, str]:
    """A field validator for an instance's extra HTTP headers: credentials belong in the
    keychain, never in the settings file."""
    for header in headers:
        if header.lower() in _CREDENTIAL_HEADERS:
            raise ValueError(
                f"'{header}' carries a credential: store the key in Settings (the system "
                "keychain) instead of the settings file"
            )
    return headers


class HttpInstance(BaseModel):
    """The settings every HTTP endpoint has, for a plugin's instance model to extend::

        class MyInstance(HttpInstance):
            base_url: str = "https://api.example.com/v1"
            \"\"\"The API's address.\"\"\"

    ``id``, ``name``, ``model``, ``base_url`` (an http(s) address, its trailing "/" removed),
    ``limit``, ``timeouts``, extra ``headers`` (never credentials) and ``api_key_env``; a key
    written into the settings file is refused. Redeclare a field to change its default or its
    help text (the docstring under it, shown in Settings).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    id: str = Field(pattern=PROVIDER_ID_PATTERN)
    """The provider's id in chains: lower-case letters, digits, ".", "_" or "-"."""
    name: str = Field("", max_length=80)
    """The name shown in the app (by default the id and the model)."""
    model: str = Field(min_length=1, max_length=200)
    """The model to ask, as the server names it."""
    base_url: str
    """The API's address."""
    limit: int = Field(4, ge=1, le=256)
    """How many answers may be written at once."""
    timeouts: HttpTimeouts = HttpTimeouts()
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra HTTP headers for every request (never a key: keys go in the keychain)."""
    api_key_env: str | None = Field(None, pattern=ENV_NAME_PATTERN)
    """An environment variable that holds the key, used when the keychain has none."""

    @model_validator(mode="before")
    @classmethod
    def _refuse_secrets(cls, data: Any) -> Any:
        return refuse_secrets(data)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            example = cls.model_fields["base_url"].default
            such_as = f", such as {example}" if isinstance(example, str) else ""
            raise ValueError(f"must be an http:// or https:// address{such_as}")
        return value.strip().rstrip("/")

    _no_credentials = field_validator("headers")(refuse_credential_headers)

    @property
    def display_name(self) -> str:
        return self.name or f"{self.id} ({self.model})"


class PluginContext:
    """What a plugin's hooks know of the user's configuration.

    ``settings`` is the plugin's own table of the settings file (``[plugins.<name>]``), as the
    user wrote it: validate it yourself (a pydantic model is the easy way) and report what is
    wrong with ``problem`` instead of raising, so that the rest of your plugin still loads.
    Secrets (API keys) live in the operating system's keychain, never in the settings file:
    ``secret(name)`` reads one, or returns ``None`` when it is not set or no keychain exists.
    """

    def __init__(
        self,
        plugin: str,
        settings: Mapping[str, Any],
        secret: Callable[[str], str | None],
        problem: Callable[[str], None],
    ) -> None:
        self.plugin = plugin
        self.settings = settings
        self._secret = secret
        self._problem = problem

    def secret(self, name: str) -> str | None:
        """The secret ``name`` of this plugin (e.g. an instance's API key), if set."""
        return self._secret(name)

    def problem(self, message: str) -> None:
        """Tell the user about a configuration problem; say where it is and how to fix it."""
        self._problem(message)

    def api_key(self, instance_id: str, env_var: str | None = None) -> str | None:
        """The API key of the instance ``instance_id``: the keychain's, else the one in the
        environment variable ``env_var`` (an instance's ``api_key_env``). A named variable that
        is not set is reported as a problem; without either, ``None`` (a local server may need
        no key)."""
        key = self.secret(instance_id)
        if key or not env_var:
            return key or None
        key = os.environ.get(env_var)
        if not key:
            self.problem(
                f"The environment variable {env_var} named by the instance '{instance_id}' is "
                "not set, and the keychain holds no key for it: requests go out without a key. "
                "Set the key in Settings, or set the variable."
            )
        return key or None

    def instances(self, model: type[InstanceModel]) -> list[InstanceModel]:
        """The valid ``[[plugins.<name>.instances]]`` of the settings file, in order.

        Each entry is validated with ``model`` on its own (it needs an ``id`` field): a bad one
        is reported as a problem (which one, which field, why — never its values) and skipped;
        so is one whose id is already taken. The others load.
        """
        table = f"[[plugins.{self.plugin}.instances]]"
        entries = self.settings.get("instances", [])
        if not isinstance(entries, Sequence) or isinstance(entries, str):
            self.problem(
                f"[plugins.{self.plugin}] 'instances' must be a list of {table} tables; "
                "no instance was loaded."
            )
            return []
        loaded: list[InstanceModel] = []
        seen: set[str] = set()
        for number, entry in enumerate(entries, start=1):
            where = f"{table} number {number}{_named(entry)}"
            if not isinstance(entry, Mapping):
                self.problem(f"{where} is not a table; it was skipped.")
                continue
            try:
                instance = model.model_validate(entry)
            except ValidationError as error:
                self.problem(
                    f"{where} was skipped: {describe_invalid(error)}. Fix it in the settings file."
                )
                continue
            instance_id = getattr(instance, "id", "")
            if instance_id in seen:
                self.problem(
                    f"{where} was skipped: another instance already has the id '{instance_id}'. "
                    "Give each instance its own id."
                )
                continue
            seen.add(instance_id)
            loaded.append(instance)
        return loaded


def _named(entry: object) -> str:
    if isinstance(entry, Mapping):
        instance_id = entry.get("id")
        if isinstance(instance_id, str) and 0 < len(instance_id) <= 64:
            return f" (id '{instance_id}')"
    return ""


class ConnectionCheck(BaseModel):
    """The result of a settings form's "Test connection"."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    message: str
    """What happened, for the user: "Connected: 12 models, answered in 0.4 s", or the error."""
    models: tuple[str, ...] = ()
    """Models the server offers, for the instance's model field to suggest."""


ConnectionTester: TypeAlias = Callable[[BaseModel, str | None], Awaitable[ConnectionCheck]]
"""Checks one configured instance (and its secret, if any) against its server."""


class SettingsForm:
    """How the Settings dialog edits a plugin's provider instances.

    The user's instances live in the settings file as ``[[plugins.<plugin>.instances]]``
    tables; ``instance_model`` (a pydantic model) validates one, and the dialog builds its
    form from the model's fields: their titles, descriptions, types and defaults. An ``id``
    field is required: it becomes the provider id. ``secret_field`` names the one value kept
    in the keychain instead of the file (an API key), under the instance's id; the plugin reads
    it with ``context.secret(instance_id)``.
    """

    def __init__(
        self,
        plugin: str,
        title: str,
        instance_model: type[BaseModel],
        *,
        description: str = "",
        secret_field: str | None = None,
        test_connection: ConnectionTester | None = None,
    ) -> None:
        if "id" not in instance_model.model_fields:
            raise ValueError(f"{instance_model.__name__} needs an 'id' field")
        self.plugin = plugin
        self.title = title
        self.instance_model = instance_model
        self.description = description
        self.secret_field = secret_field
        self.test_connection = test_connection


RegisterSettingsForm: TypeAlias = Callable[[SettingsForm], None]


class HookSpecs:
    """The hooks a plugin may implement. Implementations may accept a subset of the arguments."""

    @hookspec
    def register_providers(self, register: RegisterProvider, context: PluginContext) -> None:
        """Call ``register(provider)`` once for every provider this plugin offers."""

    @hookspec
    def register_personas(self, register: RegisterPersona) -> None:
        """Call ``register(persona)`` for every persona this plugin ships."""

    @hookspec
    def register_settings_forms(self, register: RegisterSettingsForm) -> None:
        """Call ``register(SettingsForm(...))`` to let users add and edit your provider
        instances in the Settings dialog."""
