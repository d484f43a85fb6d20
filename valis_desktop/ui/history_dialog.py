"""The History: every stored conversation, newest first, with search, open, delete, export
and import.

The dialog never waits on the disk. A list page or a search is one task at a time (a newer one
cancels the older) and hiding the dialog cancels it. Deleting and importing are the store's own
futures, which finish whatever happens to the dialog; their callbacks emit ``deleted`` and
``imported``, so the window learns of every change that was made.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Coroutine
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject, QStandardPaths, Qt, QTimer, Signal
from PySide6.QtGui import QHideEvent, QKeyEvent, QKeySequence, QShortcut, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QMenu,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from valis_desktop.core.store import Store, StoreError
from valis_desktop.ui.form_layout import wrapped_label
from valis_desktop.ui.history_rows import (
    Row,
    RowDelegate,
    conversation_row,
    count_text,
    hit_row,
    row_item,
    row_of,
)
from valis_desktop.ui.model_form import ERROR_STYLE

__all__ = ["HistoryDialog"]

log = logging.getLogger(__name__)

PAGE_SIZE = 100
SEARCH_LIMIT = 50
DEBOUNCE_MS = 200


class HistoryDialog(QDialog):
    """Every stored conversation, newest first; the search box searches all their messages.

    Keep one instance: each time it is shown it reloads (keeping the search box's text), and
    opening an entry hides it. ``open_requested(conversation_id, message_id)`` asks the window
    to open a conversation (``message_id`` is empty unless a search hit was opened);
    ``deleted`` and ``imported`` carry the id of a conversation deleted or imported.

    Keys: Down goes from the search box to the list and Up back from its top; Enter opens,
    Delete deletes (after asking), Ctrl+F returns to the search box, Escape closes.
    """

    open_requested = Signal(str, str)
    deleted = Signal(str)
    imported = Signal(str)

    def __init__(
        self, store: Store, parent: QWidget | None = None, *, page_size: int = PAGE_SIZE
    ) -> None:
        """``page_size``: how many conversations are read at a time as the list scrolls."""
        super().__init__(parent)
        self._store = store
        self._page_size = max(1, page_size)
        self._load: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._loaded = 0  # conversations in the list: where the next page starts
        self._exhausted = self._searching = False
        documents = QStandardPaths.StandardLocation.DocumentsLocation
        self._directory = Path(QStandardPaths.writableLocation(documents) or Path.home())
        self.setWindowTitle("History")
        self.setAccessibleName("History")
        self.resize(720, 520)

        self.search = QLineEdit(self)
        self.search.setPlaceholderText("Search all conversations")
        self.search.setAccessibleName("Search conversations")
        self.search.setClearButtonEnabled(True)
        self.search.installEventFilter(self)
        self._debounce = QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self._debounce.timeout.connect(self.refresh)
        self.search.textChanged.connect(lambda _text: self._debounce.start())
        self.status = QLabel(self)
        self.status.setAccessibleName("List status")
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        self.list = QListWidget(self)
        self.list.setAccessibleName("Conversations")
        self.list.setItemDelegate(RowDelegate(self.list))
        self.list.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setResizeMode(QListWidget.ResizeMode.Adjust)  # snippets rewrap
        self.list.setAlternatingRowColors(True)
        self.list.installEventFilter(self)
        self.list.itemDoubleClicked.connect(self.open_current)
        self.list.currentRowChanged.connect(self._enable_buttons)
        self.list.verticalScrollBar().valueChanged.connect(self._maybe_more)
        self.list.verticalScrollBar().rangeChanged.connect(self._maybe_more)
        self.notice = wrapped_label("", self)
        self.notice.setAccessibleName("Result of the last action")
        self.notice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.notice.hide()

        self.open_button = self._button("&Open", "Open the selected conversation")
        self.open_button.clicked.connect(self.open_current)
        self.open_button.setDefault(True)
        self.delete_button = self._button("&Delete…", "Delete the selected conversation")
        self.delete_button.clicked.connect(self.delete_current)
        self.export_button = self._button("&Export", "Export the selected conversation")
        menu = QMenu(self.export_button)
        menu.setAccessibleName("Export formats")
        self.export_markdown_action = menu.addAction("Export as &Markdown…")
        self.export_markdown_action.triggered.connect(lambda: self.export_current("markdown"))
        self.export_json_action = menu.addAction("Export as &JSON…")
        self.export_json_action.triggered.connect(lambda: self.export_current("json"))
        self.export_button.setMenu(menu)
        self.import_button = self._button("&Import JSON…", "Import a conversation from a file")
        self.import_button.clicked.connect(self.import_file)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        close.rejected.connect(self.reject)
        close.button(QDialogButtonBox.StandardButton.Close).setAccessibleName("Close History")
        QShortcut(QKeySequence.StandardKey.Find, self, self._focus_search)

        buttons = QHBoxLayout()
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.delete_button)
        buttons.addStretch(1)
        buttons.addWidget(self.export_button)
        buttons.addWidget(self.import_button)
        buttons.addSpacing(12)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        for widget, stretch in ((self.search, 0), (self.status, 0), (self.list, 1)):
            layout.addWidget(widget, stretch)
        layout.addWidget(self.notice)
        layout.addLayout(buttons)
        self._enable_buttons()

    @property
    def busy(self) -> bool:
        """Whether a load, a search, an export or the reading of a file is still running."""
        return bool(self._tasks)

    def rows(self) -> list[Row]:
        """The entries of the list, top to bottom."""
        return [row_of(self.list.item(i)) for i in range(self.list.count())]

    def current_row(self) -> Row | None:
        """The selected entry, if any."""
        item = self.list.currentItem()
        return None if item is None else row_of(item)

    def refresh(self, select: str = "") -> None:
        """Reload the list, or search again if the search box has text. Then select the
        conversation ``select`` (reading pages until it is there), or else keep the selected
        conversation in the list and the best match in a search."""
        self._debounce.stop()
        if self._load is not None:
            self._load.cancel()
        words = self.search.text().strip()
        self._searching = bool(words)
        self.status.setText("Searching…" if words else "Loading…")
        keep = select or (row.conversation_id if (row := self.current_row()) else "")
        self._load = self._start(
            self._search(words, select) if words else self._conversations(0, keep)
        )

    def open_current(self) -> None:
        """Ask the window to open the selected conversation (at the message, for a hit)."""
        if (row := self.current_row()) is not None:
            self.open_requested.emit(row.conversation_id, row.message_id)
            self.accept()

    def delete_current(self) -> None:
        """Ask whether to delete the selected conversation; delete it if the user says so."""
        if (row := self.current_row()) is None:
            return
        box = QMessageBox(QMessageBox.Icon.Question, "Delete conversation", "", parent=self)
        box.setText(f"Delete “{row.title}”?")
        box.setInformativeText("All its messages are deleted for good. This cannot be undone.")
        confirm = box.addButton("&Delete", QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(box.addButton(QMessageBox.StandardButton.Cancel))
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        confirm.clicked.connect(lambda: self._delete(row))
        box.open()

    def export_current(self, kind: str) -> None:
        """Export the selected conversation to a file the user chooses; ``kind`` is
        ``"markdown"`` or ``"json"``."""
        if (row := self.current_row()) is not None:
            self._start(self._export(row, markdown=kind == "markdown"))

    def import_file(self) -> None:
        """Import a conversation from a JSON export the user chooses."""
        self._start(self._import())

    async def choose_export_path(self, suggested: str, name_filter: str) -> str | None:
        """The file to export to (``None``: the user cancelled). Tests replace this."""
        dialog = QFileDialog(self, "Export conversation", str(self._directory / suggested))
        dialog.setNameFilter(name_filter)
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setDefaultSuffix(suggested.rpartition(".")[2])
        return await self._ask(dialog)

    async def choose_import_path(self) -> str | None:
        """The file to import (``None``: the user cancelled). Tests replace this."""
        dialog = QFileDialog(self, "Import a conversation")
        dialog.setDirectory(str(self._directory))
        dialog.setNameFilters(["Valis Desktop conversations (*.json)", "All files (*)"])
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        return await self._ask(dialog)

    # -- reading ------------------------------------------------------------------------------

    async def _conversations(self, offset: int, select: str) -> None:
        while True:
            page = await self._store.list_conversations(limit=self._page_size, offset=offset)
            now = datetime.now().astimezone()
            self._show([conversation_row(summary, now) for summary in page], append=offset > 0)
            offset = self._loaded = offset + len(page)
            self._exhausted = len(page) < self._page_size
            self.list.doItemsLayout()  # now, so that the scroll range is up to date
            if (self._select(select) if select else not self._near_end()) or self._exhausted:
                break
        if not (count := self.list.count()):
            self.status.setText("No conversations yet. Every chat will be kept here.")
        elif self._exhausted:
            self.status.setText(f"{count_text(count, 'conversation')}, the most recent first")
        else:
            self.status.setText("The most recent conversations first; scroll for older ones")

    async def _search(self, words: str, select: str) -> None:
        hits = await self._store.search(words, limit=SEARCH_LIMIT + 1)
        now = datetime.now().astimezone()
        self._show([hit_row(hit, now) for hit in hits[:SEARCH_LIMIT]], append=False)
        self._select(select)
        chats = count_text(len({hit.conversation_id for hit in hits}), "conversation")
        if not hits:
            self.status.setText(f"No message contains “{words}”.")
        elif len(hits) > SEARCH_LIMIT:
            self.status.setText(f"The best {SEARCH_LIMIT} matches. Add a word to narrow them.")
        else:
            self.status.setText(f"{count_text(len(hits), 'message')} in {chats}")

    def _show(self, rows: list[Row], *, append: bool) -> None:
        if not append:
            self.list.clear()
        for row in rows:
            self.list.addItem(row_item(row))
        if self.list.currentRow() < 0 and self.list.count():
            self.list.setCurrentRow(0)

    def _select(self, conversation_id: str) -> bool:
        """Select the first entry of ``conversation_id``; whether there is one."""
        for i, row in enumerate(self.rows()):
            if conversation_id and row.conversation_id == conversation_id:
                self.list.setCurrentRow(i)
                self.list.scrollToItem(self.list.item(i))
                return True
        return False

    def _near_end(self) -> bool:
        """Whether less than a screen of the list is left below what is shown."""
        bar = self.list.verticalScrollBar()
        return bar.value() >= bar.maximum() - bar.pageStep()

    def _maybe_more(self) -> None:
        """Read the next page when the user scrolls near the end of the list."""
        loading = self._load is not None and not self._load.done()
        if self._searching or self._exhausted or loading or not self.isVisible():
            return
        if self._near_end():
            self._load = self._start(self._conversations(self._loaded, ""))

    # -- writing ------------------------------------------------------------------------------

    def _delete(self, row: Row) -> None:
        future = self._store.delete_conversation(row.conversation_id)
        future.add_done_callback(partial(self._deleted, row))

    def _deleted(self, row: Row, future: asyncio.Future[None]) -> None:
        if future.cancelled():
            return
        if (error := future.exception()) is not None:
            self._tell(f"Could not delete “{row.title}”: {error}", ok=False)
            return
        for i in reversed(range(self.list.count())):
            if row_of(self.list.item(i)).conversation_id == row.conversation_id:
                self.list.takeItem(i)
                self._loaded -= 0 if self._searching else 1
        self._tell(f"Deleted “{row.title}”.")
        self.deleted.emit(row.conversation_id)

    async def _export(self, row: Row, *, markdown: bool) -> None:
        suffix = ".md" if markdown else ".json"
        name_filter = "Markdown (*.md)" if markdown else "Valis Desktop conversation (*.json)"
        stem = re.sub(r'[\\/:*?"<>|\x00-\x1f]+', " ", row.title).strip(" .")[:80]
        path = await self.choose_export_path((stem or "conversation") + suffix, name_filter)
        if path is None:
            return
        export = self._store.export_markdown if markdown else self._store.export_json
        try:
            text = await export(row.conversation_id)
            await asyncio.to_thread(Path(path).write_bytes, text.encode("utf-8"))
        except (StoreError, OSError) as error:
            self._tell(f"Could not export “{row.title}” to {path}: {_reason(error)}", ok=False)
            return
        self._tell(f"Exported “{row.title}” to {path}.")

    async def _import(self) -> None:
        if (path := await self.choose_import_path()) is None:
            return
        try:
            data = await asyncio.to_thread(Path(path).read_bytes)
        except OSError as error:
            self._tell(f"Could not read {path}: {_reason(error)}", ok=False)
            return
        future = self._store.import_json(data)
        future.add_done_callback(partial(self._imported, Path(path).name))

    def _imported(self, name: str, future: asyncio.Future[str]) -> None:
        if future.cancelled():
            return
        if (error := future.exception()) is not None:
            self._tell(f"Could not import {name}: {error}", ok=False)
            return
        self._tell(f"Imported {name} as a new conversation.")
        self.imported.emit(future.result())
        if self.isVisible():  # show it in the list, selected
            self.search.blockSignals(True)
            self.search.clear()
            self.search.blockSignals(False)
            self.refresh(select=future.result())

    # -- plumbing -----------------------------------------------------------------------------

    def _button(self, text: str, accessible_name: str) -> QPushButton:
        button = QPushButton(text, self)
        button.setAccessibleName(accessible_name)
        return button

    def _enable_buttons(self) -> None:
        for button in (self.open_button, self.delete_button, self.export_button):
            button.setEnabled(self.current_row() is not None)

    def _tell(self, message: str, *, ok: bool = True) -> None:
        self.notice.setStyleSheet("" if ok else ERROR_STYLE)
        self.notice.setText(("✓ " if ok else "✗ ") + message)
        self.notice.show()

    def _focus_search(self) -> None:
        self.search.setFocus()
        self.search.selectAll()

    def _start(self, job: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(job)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("The History failed", exc_info=error)
            self._tell(f"Something went wrong: {error}", ok=False)

    async def _ask(self, dialog: QFileDialog) -> str | None:
        """Open ``dialog`` (without a nested event loop) and wait for the file chosen."""
        answered: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def finished(result: int) -> None:
            if not answered.done():
                answered.set_result(result)

        dialog.finished.connect(finished)
        dialog.open()
        try:
            accepted = await answered == QDialog.DialogCode.Accepted.value
            chosen = dialog.selectedFiles() if accepted else []
        finally:
            dialog.close()
            dialog.deleteLater()
        if not chosen:
            return None
        self._directory = Path(chosen[0]).parent
        return chosen[0]

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """The keys of the search box and the list (see the class docstring)."""
        if not isinstance(event, QKeyEvent) or event.type() != QEvent.Type.KeyPress:
            return super().eventFilter(watched, event)
        key, row = event.key(), self.list.currentRow()
        enter = key in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
        if watched is self.search and key == Qt.Key.Key_Down and self.list.count():
            self.list.setFocus()
        elif watched is self.search and enter and self._debounce.isActive():
            self.refresh()  # the search the pause would have started; Enter again opens
        elif watched is self.list and key == Qt.Key.Key_Up and row <= 0:
            self.search.setFocus()
        elif watched is self.list and key == Qt.Key.Key_Delete:
            self.delete_current()
        elif watched in (self.search, self.list) and enter:
            self.open_current()
        else:
            return super().eventFilter(watched, event)
        return True

    def showEvent(self, event: QShowEvent) -> None:
        """Reload whenever the dialog is shown; the search box has the focus."""
        super().showEvent(event)
        if not event.spontaneous():
            self.notice.hide()
            self.refresh()
            self._focus_search()

    def hideEvent(self, event: QHideEvent) -> None:
        """Stop reading and searching: nothing the dialog started runs on while it is hidden."""
        super().hideEvent(event)
        if not event.spontaneous():
            self._debounce.stop()
            for task in self._tasks:
                task.cancel()


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror + "."
    return str(error)
