"""Provider ids for llm's model ids.

An llm model id may hold anything ("mlx-community/Llama-3.2-3B-Instruct-4bit",
"anthropic/claude-3.5-sonnet", "Ollama:Qwen2:7B"); a provider id is 1–64 lower-case letters,
digits, ".", "_" or "-". The id of model ``m`` is ``llm.`` and ``m`` in lower case with every
run of other characters turned into one "-". Two models that end up with the same id, or an id
too long, get eight hex digits of a hash of the full model id appended instead: the same models
always get the same ids, whichever order llm lists them in.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from valis_desktop.api import PROVIDER_ID_PATTERN

PREFIX = "llm."
MAX_LENGTH = 64
_DIGEST_LENGTH = 8
_OTHER = re.compile(r"[^a-z0-9_.-]+")
_DASHES = re.compile(r"-{2,}")
_VALID = re.compile(PROVIDER_ID_PATTERN)


@dataclass(frozen=True, slots=True)
class Placement:
    """Where one of llm's models goes: its provider id, or why it has none."""

    model_id: str
    provider_id: str | None
    problem: str = ""


def normalise(model_id: str) -> str:
    """``model_id`` with only the characters a provider id allows (possibly empty)."""
    ascii_only = unicodedata.normalize("NFKD", model_id).encode("ascii", "ignore").decode()
    text = _OTHER.sub("-", ascii_only.strip().lower())
    return _DASHES.sub("-", text).strip("-.")


def digest(model_id: str) -> str:
    return hashlib.sha256(model_id.encode()).hexdigest()[:_DIGEST_LENGTH]


def _fit(model_id: str, base: str, *, hashed: bool) -> str:
    whole = PREFIX + base
    if not hashed and len(whole) <= MAX_LENGTH:
        return whole
    room = MAX_LENGTH - len(PREFIX) - _DIGEST_LENGTH - 1
    return f"{PREFIX}{base[:room].rstrip('-.')}-{digest(model_id)}"


def place(model_ids: Sequence[str]) -> list[Placement]:
    """A provider id for each of ``model_ids`` (in the same order), deterministically.

    Models are placed in order of their ids (a stable sort: of two models registered under the
    same id, the one llm lists first wins, the other is refused).
    """
    placements: list[Placement | None] = [None] * len(model_ids)
    taken: set[str] = set()
    seen: set[str] = set()
    for index in sorted(range(len(model_ids)), key=lambda i: model_ids[i]):
        model_id = model_ids[index]
        placements[index] = _place_one(model_id, taken, seen)
        seen.add(model_id)
    return [placement for placement in placements if placement is not None]


def _place_one(model_id: str, taken: set[str], seen: set[str]) -> Placement:
    if model_id in seen:
        return Placement(
            model_id,
            None,
            f"two llm plugins register a model called '{model_id}'; only the first is offered. "
            "Uninstall one of them (llm plugins lists them).",
        )
    base = normalise(model_id)
    if not base:
        return Placement(
            model_id,
            None,
            f"llm's model '{model_id}' has no letter or digit to name a provider after; "
            "it is not offered.",
        )
    for hashed in (False, True):
        candidate = _fit(model_id, base, hashed=hashed)
        if candidate not in taken and _VALID.match(candidate):
            taken.add(candidate)
            return Placement(model_id, candidate)
    return Placement(
        model_id,
        None,
        f"llm's model '{model_id}' cannot be given a provider id of its own; it is not offered.",
    )
