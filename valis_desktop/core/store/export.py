"""A conversation as a file: Markdown for reading, JSON for keeping and importing back.

The JSON shape is documented in docs/storage.md and is stable: format version 1 changes only
by adding fields, which older versions ignore on import. Timestamps are ISO 8601 in UTC with
milliseconds (``2024-05-01T09:30:00.250Z``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from valis_desktop.api import Role
from valis_desktop.core.store.errors import ImportFailed
from valis_desktop.core.store.records import (
    Conversation,
    MessageStatus,
    StoredMessage,
    from_ms,
    to_ms,
)

FORMAT = "valis-desktop/conversation"
FORMAT_VERSION = 1

_IMPORTED_STATUS = {
    # A file exported mid-answer: its stream will never resume in this database.
    MessageStatus.STREAMING: MessageStatus.INTERRUPTED,
    MessageStatus.PENDING: MessageStatus.NOT_SENT,
}
_NOTES = {
    MessageStatus.STOPPED: "Stopped",
    MessageStatus.FAILED: "Failed",
    MessageStatus.INTERRUPTED: "Interrupted",
    MessageStatus.STREAMING: "Still streaming when exported",
    MessageStatus.NOT_SENT: "Not sent",
    MessageStatus.CANCELLED: "Cancelled",
    MessageStatus.PENDING: "Waiting to be sent",
}


class _Model(BaseModel):
    # Unknown fields are ignored: a file from a newer 1.x version still imports.
    model_config = ConfigDict(frozen=True, extra="ignore")


class ExportedUsage(_Model):
    prompt_tokens: int | None = Field(default=None, ge=0)
    completion_tokens: int | None = Field(default=None, ge=0)


class ExportedMessage(_Model):
    id: str = ""
    role: Literal["user", "assistant"]
    text: str
    status: MessageStatus
    created_at: AwareDatetime
    finished_at: AwareDatetime | None = None
    provider_id: str | None = None
    error: str = ""
    first_chunk_seconds: float | None = Field(default=None, ge=0)
    chars_per_second: float | None = Field(default=None, ge=0)
    usage: ExportedUsage | None = None


class ExportedConversation(_Model):
    id: str = ""
    title: str = ""
    persona_id: str | None = None
    chain: tuple[str, ...] = ()
    created_at: AwareDatetime
    updated_at: AwareDatetime


class ExportFile(_Model):
    """A whole export file, as validated on import."""

    format: Literal["valis-desktop/conversation"]
    format_version: int = Field(ge=1)
    exported_at: AwareDatetime | None = None
    conversation: ExportedConversation
    messages: tuple[ExportedMessage, ...]


def to_json(conversation: Conversation, messages: Sequence[StoredMessage], now_ms: int) -> str:
    """The conversation in the documented JSON shape (pretty-printed, UTF-8 text)."""
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "exported_at": _iso_ms(now_ms),
        "conversation": {
            "id": conversation.id,
            "title": conversation.title,
            "persona_id": conversation.persona_id,
            "chain": list(conversation.chain),
            "created_at": _iso(conversation.created_at),
            "updated_at": _iso(conversation.updated_at),
        },
        "messages": [_message_json(message) for message in messages],
    }
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def _message_json(message: StoredMessage) -> dict[str, Any]:
    usage = None
    if message.prompt_tokens is not None or message.completion_tokens is not None:
        usage = {
            "prompt_tokens": message.prompt_tokens,
            "completion_tokens": message.completion_tokens,
        }
    return {
        "id": message.id,
        "role": message.role.value,
        "text": message.text,
        "status": message.status.value,
        "created_at": _iso(message.created_at),
        "finished_at": None if message.finished_at is None else _iso(message.finished_at),
        "provider_id": message.provider_id,
        "error": message.error,
        "first_chunk_seconds": message.first_chunk_seconds,
        "chars_per_second": message.chars_per_second,
        "usage": usage,
    }


def parse_json(data: str | bytes) -> ExportFile:
    """Validate an export file; raises ``ImportFailed`` saying what is wrong with it."""
    try:
        parsed = ExportFile.model_validate_json(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'file'}: {problem['msg']}"
            for problem in error.errors()[:3]
        )
        more = error.error_count() - 3
        if more > 0:
            problems += f" (and {more} more)"
        raise ImportFailed(
            f"This file is not a Valis Desktop conversation export ({problems}). "
            "Nothing was imported."
        ) from None
    if parsed.format_version > FORMAT_VERSION:
        raise ImportFailed(
            f"This conversation was exported by a newer Valis Desktop (format version "
            f"{parsed.format_version}; this one reads version {FORMAT_VERSION}). Update Valis "
            "Desktop to import it. Nothing was imported."
        )
    return parsed


def message_rows(
    exported: Sequence[ExportedMessage], new_ids: Sequence[str]
) -> list[tuple[object, ...]]:
    """Rows for ``queries.add_messages``: new ids, order kept, unfinished states settled."""
    rows: list[tuple[object, ...]] = []
    for seq, (message, new_id) in enumerate(zip(exported, new_ids, strict=True)):
        usage = message.usage or ExportedUsage()
        rows.append(
            (
                new_id,
                seq,
                message.role,
                message.text,
                _IMPORTED_STATUS.get(message.status, message.status).value,
                message.provider_id,
                message.error,
                to_ms(message.created_at),
                None if message.finished_at is None else to_ms(message.finished_at),
                message.first_chunk_seconds,
                message.chars_per_second,
                usage.prompt_tokens,
                usage.completion_tokens,
            )
        )
    return rows


def to_markdown(conversation: Conversation, messages: Sequence[StoredMessage], now_ms: int) -> str:
    """The conversation for people to read: a heading per message, its text as written."""
    first_question = next((m.text for m in messages if m.role is Role.USER), "")
    title = conversation.title or first_question.strip().split("\n", 1)[0][:80] or "Conversation"
    about = [f"started {_human(conversation.created_at)}"]
    if conversation.persona_id:
        about.append(f"persona {conversation.persona_id}")
    if conversation.chain:
        about.append("providers " + " → ".join(conversation.chain))
    lines = [
        f"# {title}",
        "",
        f"Exported from Valis Desktop on {_human(from_ms(now_ms))}; " + ", ".join(about) + ".",
    ]
    for message in messages:
        who = ["You"] if message.role is Role.USER else ["Assistant"]
        if message.provider_id:
            who.append(message.provider_id)
        who.append(_human(message.created_at))
        lines += ["", "---", "", f"### {' · '.join(who)}", ""]
        if message.text:
            lines.append(message.text.rstrip("\n"))
        note = _NOTES.get(message.status)
        if note:
            detail = f": {message.error}" if message.error else "."
            lines += ["", f"*{note}{detail}*"]
    return "\n".join(lines) + "\n"


def _iso(moment: datetime) -> str:
    return _iso_ms(to_ms(moment))


def _iso_ms(ms: int) -> str:
    return from_ms(ms).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _human(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")
