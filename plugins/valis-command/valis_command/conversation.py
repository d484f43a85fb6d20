"""The conversation as a command reads it on its standard input."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Literal

from valis_desktop.api import Message

_LABELS = {"system": "System", "user": "User", "assistant": "Assistant"}


def render(messages: Sequence[Message], format: Literal["text", "json"]) -> bytes:
    """``text``: "System: …", "User: …" and "Assistant: …" paragraphs, oldest first, ending with
    the newest user message; ``json``: an array of ``{"role", "content"}`` objects. UTF-8, with
    a final newline."""
    if format == "json":
        payload = [{"role": m.role.value, "content": m.content} for m in messages]
        return (json.dumps(payload, ensure_ascii=False) + "\n").encode()
    paragraphs = [f"{_LABELS[m.role.value]}: {m.content}" for m in messages]
    return ("\n\n".join(paragraphs) + "\n").encode()
