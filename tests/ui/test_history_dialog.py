"""The History: the list, search, open, delete, export and import; and jumping to a message."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCursor, QTextDocument
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QWidget,
)
from pytestqt.qtbot import QtBot

from valis_desktop.core.store import FORMAT, Store
from valis_desktop.ui.chat_view import ChatView, HistoryItem
from valis_desktop.ui.history_dialog import HistoryDialog

T = TypeVar("T")
NOW = 1_714_560_000.0  # 2024-05-01T10:40:00Z: the store's clock, so exports are repeatable
HOSTILE = ['"', "(tram", "tram AND", "*", "-tram", "NEAR(tram", "'; DROP TABLE x; --", "<script>"]


def run(qtbot: QtBot, awaitable: Awaitable[T]) -> T:
    """Run ``awaitable`` on the Qt application's loop and return its result."""
    future = asyncio.ensure_future(awaitable)
    qtbot.waitUntil(future.done)
    return future.result()


def export_of(title: str, *texts: str, updated: str) -> str:
    """A JSON export of a conversation whose messages alternate between user and assistant."""
    messages = [
        {
            "role": "user" if i % 2 == 0 else "assistant",
            "text": text,
            "status": "sent" if i % 2 == 0 else "answered",
            "created_at": updated,
            "provider_id": None if i % 2 == 0 else "local",
        }
        for i, text in enumerate(texts)
    ]
    conversation = {"title": title, "created_at": updated, "updated_at": updated}
    document = {"format": FORMAT, "format_version": 1, "conversation": conversation}
    return json.dumps({**document, "messages": messages})


Conversations = dict[str, str]  # the test conversations' ids by name


class ScriptedHistory(HistoryDialog):
    """Answers the file choices from a list instead of asking."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.paths: list[str | None] = []
        self.asked: list[tuple[str, str]] = []

    async def choose_export_path(self, suggested: str, name_filter: str) -> str | None:
        self.asked.append((suggested, name_filter))
        return self.paths.pop(0)

    async def choose_import_path(self) -> str | None:
        return self.paths.pop(0)


@pytest.fixture
def store(qtbot: QtBot, qloop: asyncio.AbstractEventLoop, tmp_path: Path) -> Iterator[Store]:
    opened = run(qtbot, Store.open(tmp_path / "conversations.sqlite3", wall_clock=lambda: NOW))
    yield opened
    run(qtbot, opened.aclose())


@pytest.fixture
def ids(qtbot: QtBot, store: Store) -> Conversations:
    found: Conversations = {}
    documents = {
        "lisbon": export_of(
            "Lisbon",
            "What should I see in Lisbon?\nI have two days.",
            "Ride tram 28 through the Alfama, then <script>alert(1)</script> watch the sunset.",
            updated="2023-03-01T09:30:00Z",
        ),
        "bread": export_of(
            "",
            "How do I bake bread?",
            "Flour, water, salt (and time).",
            updated="2024-02-01T12:00Z",
        ),
        "rust": export_of(
            "Rust lifetimes",
            "Why does the borrow checker complain?",
            "Because the reference outlives its owner.",
            "And with a tram of threads?",
            "Use Arc.",
            updated="2024-04-30T08:00:00Z",
        ),
    }
    for name, document in documents.items():
        found[name] = run(qtbot, store.import_json(document))
    run(qtbot, store.set_tab_order([found["lisbon"]]))
    return found


MakeDialog = Callable[..., Any]


@pytest.fixture
def make_dialog(qtbot: QtBot, store: Store) -> Iterator[MakeDialog]:
    dialogs: list[HistoryDialog] = []

    def make(*, wait: bool = True, kind: type[HistoryDialog] = ScriptedHistory, **kw: Any) -> Any:
        dialog = kind(store, **kw)
        qtbot.addWidget(dialog)
        dialogs.append(dialog)
        with qtbot.waitActive(dialog):
            dialog.show()
        if wait:
            qtbot.waitUntil(lambda: not dialog.busy)
        return dialog

    yield make
    for dialog in dialogs:
        dialog.close()
        qtbot.waitUntil(lambda dialog=dialog: not dialog.busy)  # type: ignore[misc]


def search_for(qtbot: QtBot, dialog: HistoryDialog, words: str) -> None:
    dialog.search.setText(words)
    dialog.refresh()  # at once, rather than after the typing pause
    qtbot.waitUntil(lambda: not dialog.busy)


def test_the_list_shows_conversations_newest_first(
    qtbot: QtBot, ids: Conversations, make_dialog: MakeDialog
) -> None:
    dialog = make_dialog(wait=False, page_size=2)  # two pages, read as the list needs them
    assert dialog.status.text() == "Loading…"
    assert dialog.search.hasFocus()
    qtbot.waitUntil(lambda: not dialog.busy and len(dialog.rows()) == 3)

    rust, bread, lisbon = dialog.rows()
    assert [rust.title, bread.title, lisbon.title] == [
        "Rust lifetimes",
        "How do I bake bread?",
        "Lisbon",
    ]
    assert lisbon.detail == "What should I see in Lisbon?"
    assert lisbon.detail_corner == "2 messages · open in tab 1"
    assert lisbon.corner.endswith("2023")
    assert bread.detail == ""  # an untitled conversation is named by its first line
    assert rust.detail_corner == "4 messages"
    assert "Rust lifetimes" in dialog.list.item(0).text()  # what a screen reader says
    assert dialog.status.text() == "3 conversations, the most recent first"
    assert dialog.current_row() == rust


def test_search_bolds_the_matches_and_takes_any_text(
    qtbot: QtBot, ids: Conversations, make_dialog: MakeDialog
) -> None:
    dialog = make_dialog()
    qtbot.keyClicks(dialog.search, "alfa")  # the end of the typing pause runs the search
    qtbot.waitUntil(lambda: [row.title for row in dialog.rows()] == ["Lisbon"])

    (hit,) = dialog.rows()
    assert hit.conversation_id == ids["lisbon"] and hit.message_id
    assert "<b>Alfama</b>" in hit.snippet_html
    assert "<script" not in hit.snippet_html and "&lt;script&gt;" in hit.snippet_html
    assert hit.corner.startswith("Assistant · ")
    assert dialog.status.text() == "1 message in 1 conversation"

    for words in HOSTILE:
        search_for(qtbot, dialog, words)
        for row in dialog.rows():  # no markup but the bold matches
            assert "<" not in row.snippet_html.replace("<b>", "").replace("</b>", "")
    (hit,) = dialog.rows()  # "<script>" finds the word "script", and shows it as text
    shown = QTextDocument()
    shown.setHtml(hit.snippet_html)
    assert "then <script>alert(1)</script> watch" in shown.toPlainText()
    search_for(qtbot, dialog, "(nothing")
    assert dialog.rows() == []
    assert dialog.status.text() == "No message contains “(nothing”."

    dialog.search.clear()
    qtbot.waitUntil(lambda: len(dialog.rows()) == 3)
    assert all(row.message_id == "" for row in dialog.rows())


def test_search_shows_at_most_fifty_matches_and_says_so(
    qtbot: QtBot, store: Store, make_dialog: MakeDialog
) -> None:
    many = [f"tram number {i}" for i in range(60)]
    run(qtbot, store.import_json(export_of("Trams", *many, updated="2024-01-01T00:00Z")))
    dialog = make_dialog()
    search_for(qtbot, dialog, "tram")
    assert len(dialog.rows()) == 50
    assert dialog.status.text() == "The best 50 matches. Add a word to narrow them."


def test_open_by_keyboard_from_the_list_and_from_a_search(
    qtbot: QtBot, store: Store, ids: Conversations, make_dialog: MakeDialog
) -> None:
    dialog = make_dialog()
    qtbot.keyClick(dialog.search, Qt.Key.Key_Down)
    assert dialog.list.hasFocus()
    qtbot.keyClick(dialog.list, Qt.Key.Key_Up)  # from the top row back to the search box
    assert dialog.search.hasFocus()
    qtbot.keyClick(dialog.search, Qt.Key.Key_Down)
    qtbot.keyClick(dialog.list, Qt.Key.Key_Down)
    with qtbot.waitSignal(dialog.open_requested) as opened:
        qtbot.keyClick(dialog.list, Qt.Key.Key_Return)
    assert opened.args == [ids["bread"], ""]
    assert not dialog.isVisible()  # opening hands over to the window

    dialog.show()
    qtbot.waitUntil(lambda: not dialog.busy)
    search_for(qtbot, dialog, "tram")
    assert [row.conversation_id for row in dialog.rows()] == [ids["rust"], ids["lisbon"]]
    rust_question = run(qtbot, store.messages(ids["rust"]))[2].id
    with qtbot.waitSignal(dialog.open_requested) as opened:
        qtbot.keyClick(dialog.search, Qt.Key.Key_Return)  # the best match is selected
    assert opened.args == [ids["rust"], rust_question]

    dialog.show()
    qtbot.waitUntil(lambda: not dialog.busy)
    assert dialog.search.text() == "tram"  # what was typed is kept
    lisbon_answer = run(qtbot, store.messages(ids["lisbon"]))[1].id
    rect = dialog.list.visualItemRect(dialog.list.item(1))
    qtbot.mouseClick(dialog.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    with qtbot.waitSignal(dialog.open_requested) as opened:
        qtbot.mouseDClick(dialog.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert opened.args == [ids["lisbon"], lisbon_answer]


def visible_message_box(dialog: QWidget) -> QMessageBox | None:
    boxes = [box for box in dialog.findChildren(QMessageBox) if box.isVisible()]
    return boxes[0] if boxes else None


def test_delete_asks_then_deletes(
    qtbot: QtBot, store: Store, ids: Conversations, make_dialog: MakeDialog
) -> None:
    dialog = make_dialog()
    dialog.list.setCurrentRow(2)
    qtbot.keyClick(dialog.list, Qt.Key.Key_Delete)
    qtbot.waitUntil(lambda: visible_message_box(dialog) is not None)
    box = visible_message_box(dialog)
    assert box is not None and "“Lisbon”" in box.text()
    box.button(QMessageBox.StandardButton.Cancel).click()  # Cancel changes nothing
    qtbot.waitUntil(lambda: visible_message_box(dialog) is None)
    assert len(run(qtbot, store.list_conversations())) == 3

    dialog.delete_button.click()
    qtbot.waitUntil(lambda: visible_message_box(dialog) is not None)
    box = visible_message_box(dialog)
    assert box is not None
    (confirm,) = [b for b in box.buttons() if box.buttonRole(b) is box.ButtonRole.DestructiveRole]
    with qtbot.waitSignal(dialog.deleted) as deleted:
        confirm.click()
    assert deleted.args == [ids["lisbon"]]
    assert run(qtbot, store.conversation(ids["lisbon"])) is None
    assert run(qtbot, store.search("Alfama")) == []
    assert [row.conversation_id for row in dialog.rows()] == [ids["rust"], ids["bread"]]
    assert dialog.notice.text() == "✓ Deleted “Lisbon”."


def test_export_both_formats_then_import(
    qtbot: QtBot, store: Store, ids: Conversations, make_dialog: MakeDialog, tmp_path: Path
) -> None:
    dialog = make_dialog(page_size=2)  # the copy is found on a later page, and selected
    dialog.list.setCurrentRow(2)
    markdown, exported = tmp_path / "lisbon.md", tmp_path / "lisbon.json"
    dialog.paths = [str(markdown), str(exported)]
    dialog.export_markdown_action.trigger()
    qtbot.waitUntil(lambda: not dialog.busy)
    assert dialog.notice.text() == f"✓ Exported “Lisbon” to {markdown}."
    dialog.export_json_action.trigger()
    qtbot.waitUntil(lambda: not dialog.busy)
    assert dialog.asked == [
        ("Lisbon.md", "Markdown (*.md)"),
        ("Lisbon.json", "Valis Desktop conversation (*.json)"),
    ]
    assert markdown.read_text(encoding="utf-8") == run(qtbot, store.export_markdown(ids["lisbon"]))
    assert exported.read_text(encoding="utf-8") == run(qtbot, store.export_json(ids["lisbon"]))

    dialog.paths = [str(exported)]
    with qtbot.waitSignal(dialog.imported) as imported:
        dialog.import_button.click()
    copy = imported.args[0]
    assert copy not in ids.values()
    originals = run(qtbot, store.messages(ids["lisbon"]))
    assert [m.text for m in run(qtbot, store.messages(copy))] == [m.text for m in originals]
    qtbot.waitUntil(lambda: len(dialog.rows()) == 4 and not dialog.busy)
    current = dialog.current_row()
    assert current is not None and current.conversation_id == copy
    assert dialog.notice.text() == "✓ Imported lisbon.json as a new conversation."


def test_a_broken_file_or_a_failed_write_is_explained(
    qtbot: QtBot, store: Store, ids: Conversations, make_dialog: MakeDialog, tmp_path: Path
) -> None:
    dialog = make_dialog()
    imported: list[str] = []
    dialog.imported.connect(imported.append)
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "valis-desktop/conversation", "messages": [', encoding="utf-8")
    dialog.paths = [str(broken), str(tmp_path / "missing.json")]
    dialog.import_file()
    qtbot.waitUntil(lambda: "broken.json" in dialog.notice.text())
    assert dialog.notice.text().startswith("✗ Could not import broken.json: This file is not")
    assert dialog.notice.text().endswith("Nothing was imported.")
    dialog.import_file()
    qtbot.waitUntil(lambda: "missing.json" in dialog.notice.text())
    assert dialog.notice.text().endswith("No such file or directory.")
    assert len(run(qtbot, store.list_conversations())) == 3
    assert imported == []

    nowhere = tmp_path / "no such folder" / "x.md"
    dialog.paths = [str(nowhere)]
    dialog.export_current("markdown")
    qtbot.waitUntil(lambda: not dialog.busy)
    assert dialog.notice.text() == (
        f"✗ Could not export “Rust lifetimes” to {nowhere}: No such file or directory."
    )


def test_the_real_file_dialog_chooses_the_file_to_import(
    qtbot: QtBot, store: Store, make_dialog: MakeDialog, tmp_path: Path
) -> None:
    source = tmp_path / "chat.json"
    source.write_text(export_of("Picked", "hello", updated="2024-01-01T00:00Z"), encoding="utf-8")
    dialog = make_dialog(kind=HistoryDialog)
    dialog.import_file()
    qtbot.waitUntil(lambda: dialog.findChild(QFileDialog) is not None)
    qtbot.waitUntil(lambda: isinstance(QApplication.focusWidget(), QLineEdit))
    typed_into = QApplication.focusWidget()  # the file name box: paste the path in it
    assert isinstance(typed_into, QLineEdit)
    typed_into.setText(str(source))
    with qtbot.waitSignal(dialog.imported):
        qtbot.keyClick(typed_into, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: [row.title for row in dialog.rows()] == ["Picked"])


def test_escape_closes_and_cancels_a_running_search(
    qtbot: QtBot, ids: Conversations, make_dialog: MakeDialog
) -> None:
    dialog = make_dialog()
    dialog.search.setText("tram")
    dialog.refresh()
    assert dialog.busy
    qtbot.keyClick(dialog.search, Qt.Key.Key_Escape)
    assert not dialog.isVisible()
    qtbot.waitUntil(lambda: not dialog.busy)


def test_scroll_to_message_renders_earlier_pages(qtbot: QtBot) -> None:
    view = ChatView(page_size=4)
    qtbot.addWidget(view)
    view.resize(600, 400)
    view.show()
    items = [
        HistoryItem(f"m{i}", "user" if i % 2 == 0 else "assistant", f"message {i}\n\nmore text")
        for i in range(40)
    ]
    view.load_history(items)
    assert view.shown_message_count() == 4

    assert view.scroll_to_message("m3")
    assert view.shown_message_count() >= 37
    assert "message 3" in view.textCursor().selectedText()
    assert "message 4" not in view.textCursor().selectedText()
    start = QTextCursor(view.document())
    start.setPosition(view.textCursor().selectionStart())
    assert 0 <= view.cursorRect(start).top() < view.viewport().height()
    assert view.scroll_to_message("m39")
    assert "message 39" in view.textCursor().selectedText()
    assert not view.scroll_to_message("nope")
    assert not view.scroll_to_message("")


def test_looks_at_720_by_520_while_searching(
    qtbot: QtBot, store: Store, ids: Conversations, make_dialog: MakeDialog
) -> None:
    for i, place in enumerate(("Porto", "Sintra", "Coimbra", "Braga", "Faro")):
        text = f"In {place}, take the tram or walk; {'the old town is small. ' * i}"
        document = export_of(
            f"Weekend in {place}", f"Tram in {place}?", text, updated="2024-03-01Z"
        )
        run(qtbot, store.import_json(document.replace("2024-03-01Z", f"2024-03-0{i + 1}T10:00Z")))
    dialog = make_dialog()
    assert (dialog.width(), dialog.height()) == (720, 520)
    dialog.grab().save("/tmp/history-list.png")
    qtbot.keyClicks(dialog.search, "tram")
    qtbot.waitUntil(lambda: dialog.status.text() == "12 messages in 7 conversations")
    qtbot.keyClick(dialog.search, Qt.Key.Key_Down)
    dialog.grab().save("/tmp/history.png")

    for button in dialog.findChildren(QPushButton):
        assert button.width() >= button.sizeHint().width(), button.text()
    dialog.resize(dialog.minimumSizeHint())  # squeezed, but every text still fits
    for button in dialog.findChildren(QPushButton):
        assert button.width() >= button.minimumSizeHint().width(), button.text()
    assert dialog.minimumSizeHint().width() <= 1024 and dialog.minimumSizeHint().height() <= 700
