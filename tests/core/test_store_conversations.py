"""What the window asks of the store: the History list, tabs, renaming, deleting, search,
and export and import."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from valis_desktop.api import Persona, Role, TransientError, Usage
from valis_desktop.core.provider_manager import ProviderManager
from valis_desktop.core.session import Session
from valis_desktop.core.store import (
    FORMAT,
    UNSET,
    ImportFailed,
    MessageStatus,
    Recorder,
    Store,
    StoredMessage,
    StoreError,
)
from valis_desktop.testing import Script, ScriptedProvider, next_chunk

from .fixtures import stores
from .fixtures.stores import WallClock, copy_v1, fts_in_sync, query

MakeManager = Callable[..., ProviderManager]
DOCS = Path(__file__).resolve().parents[2] / "docs"

no_store_threads = stores.no_store_threads
wall_clock = stores.wall_clock
store_path = stores.store_path
store = stores.store


def _keys(value: object) -> object:
    if isinstance(value, list):
        return [_keys(item) for item in value]
    if isinstance(value, dict):
        return {key: _keys(item) for key, item in value.items()}
    return None


def _minimal_export(text: str) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": 1,
        "conversation": {
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z",
        },
        "messages": [
            {"role": "user", "text": text, "status": "sent", "created_at": "2024-01-01T00:00:00Z"}
        ],
    }


async def record_conversation(
    store: Store, make_manager: MakeManager, *, tab: int | None = 0
) -> Session:
    """A conversation with every kind of ending: answered (with usage), stopped, failed part
    way, failed with nothing, and a cancelled message."""
    gate = asyncio.Event()
    provider = ScriptedProvider(id="p")
    provider.push(
        Script(chunks=("Ride tram 28 ", "through the Alfama."), usage=Usage(prompt_tokens=9)),
        Script(chunks=("Manteigaria in ", "Chiado"), hang_after=1),
        Script(chunks=("Fado in ", "x"), error=TransientError("connection reset"), error_after=1),
        Script(chunks=("x",), error=TransientError("HTTP 503"), gate=gate),
    )
    persona = Persona(id="guide", name="Guide")
    session = Session(make_manager(provider), chain=["p", "q"], persona=persona)
    recorder = Recorder(store)
    recorder.follow(session, tab_position=tab)
    await (await recorder.submit(session, "What should I see in Lisbon?\nTwo days only."))
    stopped = await recorder.submit(session, "Where do I eat pastéis de nata?")
    await next_chunk(stopped)
    session.stop()
    await stopped
    await (await recorder.submit(session, "Any music?"))
    last = await recorder.submit(session, "Hello?")
    (await recorder.submit(session, "never mind")).cancel()
    gate.set()
    await last
    await recorder.aclose()
    await store.update_conversation(session.id, title="Lisbon")
    return session


async def test_the_history_lists_conversations_newest_first(
    store: Store, make_manager: MakeManager, wall_clock: WallClock
) -> None:
    older = await record_conversation(store, make_manager)
    wall_clock.advance(60)
    newer = Session(make_manager(ScriptedProvider(id="p")), chain=["p"])
    recorder = Recorder(store)
    recorder.follow(newer, tab_position=1)
    await (await recorder.submit(newer, "\n  Second chat, first line\nsecond line"))
    await recorder.aclose()

    listed = await store.list_conversations()
    assert [(c.id, c.title, c.first_line, c.message_count) for c in listed] == [
        (newer.id, "", "Second chat, first line", 2),
        (older.id, "Lisbon", "What should I see in Lisbon?", 9),
    ]
    assert listed[0].updated_at > listed[1].updated_at > listed[1].created_at
    assert [c.id for c in await store.list_conversations(limit=1, offset=1)] == [older.id]


async def test_tabs_are_restored_in_order_and_closing_keeps_the_history(
    store: Store, make_manager: MakeManager
) -> None:
    manager = make_manager(ScriptedProvider(id="p"))
    sessions = [Session(manager, chain=["p"]) for _ in range(3)]
    recorder = Recorder(store)
    for position, session in enumerate(sessions):
        recorder.follow(session, tab_position=position)
    a, b, c = (session.id for session in sessions)
    assert [t.id for t in await store.open_tabs()] == [a, b, c]

    store.set_tab_order([c, a])  # fire and forget: still ordered before the reads below
    assert [t.id for t in await store.open_tabs()] == [c, a]
    store.close_conversation(c)
    assert [t.id for t in await store.open_tabs()] == [a]
    assert {s.id for s in await store.list_conversations()} == {a, b, c}
    await recorder.aclose()


async def test_updating_a_conversation_changes_only_the_given_fields(store: Store) -> None:
    await store.update_conversation("c1", title="Plans", chain=["a", "b"], tab_position=0)
    await store.update_conversation("c1", persona_id="guide", draft="half a thought")
    await store.update_conversation("c1", title=UNSET, tab_position=None)
    found = await store.conversation("c1")
    assert found is not None
    assert (found.title, found.persona_id, found.chain, found.tab_position, found.draft) == (
        "Plans",
        "guide",
        ("a", "b"),
        None,
        "half a thought",
    )
    assert await store.conversation("missing") is None


async def test_deleting_removes_the_conversation_its_messages_and_their_index(
    store: Store, store_path: Path, make_manager: MakeManager
) -> None:
    kept = await record_conversation(store, make_manager)
    deleted = await record_conversation(store, make_manager)
    await store.delete_conversation(deleted.id)
    assert [c.id for c in await store.list_conversations()] == [kept.id]
    assert await store.messages(deleted.id) == []
    assert query(store_path, "SELECT COUNT(*) FROM messages WHERE conversation_id = ?", deleted.id)
    assert {hit.conversation_id for hit in await store.search("Alfama")} == {kept.id}
    assert fts_in_sync(store_path)


@pytest_asyncio.fixture
async def old_store(tmp_path: Path) -> AsyncIterator[Store]:
    """The store of an earlier version, migrated."""
    store = await Store.open(copy_v1(tmp_path))
    yield store
    await store.aclose()


async def test_search_finds_a_word_in_an_old_conversation(old_store: Store) -> None:
    store = old_store
    [hit] = await store.search("tram alfama")
    assert (hit.conversation_id, hit.conversation_title, hit.message_id, hit.role) == (
        "lisbon",
        "Trip to Lisbon",
        "l1",
        Role.ASSISTANT,
    )
    assert hit.marked() == (
        "Ride [tram] 28 through the [Alfama], then watch the sunset from the Miradouro da Senhora"
        " do…"
    )
    assert [h.message_id for h in await store.search("Mirad")] == ["l1"]  # as the user types
    assert [h.message_id for h in await store.search("pasteis")] == ["l2"]  # no accent needed
    assert await store.search("tram nowhere") == []


async def test_search_puts_the_best_match_first(store: Store) -> None:
    document = _minimal_export("a tram")
    question = document["messages"][0]
    document["messages"] = [
        {**question, "text": "One word about a tram among many other words of no interest."},
        {**question, "text": "Tram, tram, tram!"},
        {**question, "text": "Nothing to see here."},
    ]
    new_id = await store.import_json(json.dumps(document))
    ids = [m.id for m in await store.messages(new_id)]
    assert [hit.message_id for hit in await store.search("tram")] == [ids[1], ids[0]]


@pytest.mark.parametrize(
    "words",
    [
        'say "hello',
        '"',
        "(tram",
        "tram)",
        "tram AND",
        "OR",
        "NOT tram",
        "NEAR(tram 28)",
        "*",
        "tram*",
        "-tram",
        "a - b",
        "^tram",
        "tram:",
        "text:tram",
        "{text}: tram",
        "",
        "   ",
        "'; DROP TABLE messages; --",
        "\x00",
        "ünïcödé 文字",
    ],
)
async def test_no_words_break_the_search(store: Store, words: str) -> None:
    await store.import_json(json.dumps(_minimal_export("Ride tram 28 AND be happy")))
    hits = await store.search(words)
    assert all(hit.parts for hit in hits)


async def test_export_then_import_gives_back_the_same_conversation(
    store: Store, make_manager: MakeManager
) -> None:
    original = await record_conversation(store, make_manager)
    exported = await store.export_json(original.id)
    copy_id = await store.import_json(exported)

    assert copy_id != original.id
    before, after = await store.conversation(original.id), await store.conversation(copy_id)
    assert before is not None and after is not None
    assert dataclasses.replace(after, id=before.id, tab_position=0) == before
    assert after.tab_position is None  # an import opens in the history, not as a tab

    def comparable(messages: list[StoredMessage]) -> list[dict[str, object]]:
        own = ("id", "conversation_id", "seq")
        return [{k: v for k, v in dataclasses.asdict(m).items() if k not in own} for m in messages]

    originals, copies = await store.messages(original.id), await store.messages(copy_id)
    assert comparable(copies) == comparable(originals)
    assert {m.status for m in originals} == {
        MessageStatus.SENT,
        MessageStatus.ANSWERED,
        MessageStatus.STOPPED,
        MessageStatus.FAILED,
        MessageStatus.CANCELLED,
    }
    assert not {m.id for m in copies} & {m.id for m in originals}
    assert await store.export_json(copy_id) != exported  # new ids, new export time
    document = json.loads(exported)
    assert (document["format"], document["format_version"]) == (FORMAT, 1)
    assert document["messages"][1]["usage"] == {"prompt_tokens": 9, "completion_tokens": None}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", document["exported_at"])


async def test_markdown_export_reads_as_the_conversation(
    store: Store, make_manager: MakeManager
) -> None:
    session = await record_conversation(store, make_manager)
    text = await store.export_markdown(session.id)
    assert text.startswith("# Lisbon\n\nExported from Valis Desktop on 2023-11-14 22:")
    assert "persona guide, providers p → q." in text
    assert "### You · 2023-11-14 22:13 UTC\n\nWhat should I see in Lisbon?\nTwo days only." in text
    assert "### Assistant · p · 2023-11-14 22:13 UTC\n\nManteigaria in \n\n*Stopped.*" in text
    assert "*Failed: p: HTTP 503" in text or "*Failed: No provider" in text
    assert "never mind\n\n*Cancelled.*" in text


async def test_exporting_a_missing_conversation_says_so(store: Store) -> None:
    with pytest.raises(StoreError, match="no longer exists"):
        await store.export_json("gone")


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ("not json at all", "Invalid JSON"),
        ("[]", "file: Input should be an object"),
        ('{"format": "something-else"}', "format"),
        (json.dumps({**_minimal_export("x"), "messages": [{"role": "robot"}]}), "messages.0"),
        (json.dumps({**_minimal_export("x"), "format_version": 2}), "newer Valis Desktop"),
        (b"\xff\xfe\x00garbage", "not a Valis Desktop"),
    ],
)
async def test_a_bad_import_file_is_a_clear_error_and_imports_nothing(
    store: Store, data: str | bytes, why: str
) -> None:
    with pytest.raises(ImportFailed, match=why) as raised:
        await store.import_json(data)
    assert "Nothing was imported" in str(raised.value)
    assert await store.list_conversations() == []


async def test_an_unfinished_export_imports_as_interrupted_and_not_sent(store: Store) -> None:
    document = _minimal_export("waiting")
    question = document["messages"][0]
    document["messages"] = [
        {**question, "status": "pending"},
        {**question, "role": "assistant", "status": "streaming"},
    ]
    new_id = await store.import_json(json.dumps(document))
    assert [m.status for m in await store.messages(new_id)] == [
        MessageStatus.NOT_SENT,
        MessageStatus.INTERRUPTED,
    ]


async def test_the_documented_example_imports(store: Store) -> None:
    text = (DOCS / "storage.md").read_text(encoding="utf-8")
    example = re.search(r"```json\n(.*?)```", text, flags=re.S)
    assert example is not None
    new_id = await store.import_json(example.group(1))
    found = await store.conversation(new_id)
    messages = await store.messages(new_id)
    assert found is not None and found.title == "Lisbon"
    assert [(m.role, m.status, m.provider_id) for m in messages] == [
        (Role.USER, MessageStatus.SENT, None),
        (Role.ASSISTANT, MessageStatus.ANSWERED, "local"),
    ]
    exported = json.loads(await store.export_json(new_id))
    documented = json.loads(example.group(1))
    for shape in ("conversation", "messages"):
        assert _keys(exported[shape]) == _keys(documented[shape])
    assert exported.keys() == documented.keys()
