"""The transcript of one chat tab: user questions, streamed answers, notices.

How the document is built (measured in ``bench/chat_view.py``):

- An open answer grows by plain text inserted with a ``QTextCursor`` at its end: one insert per
  batch, never a re-render. ``finish_answer`` replaces that plain text with rendered Markdown.
- Every message is inserted as an HTML fragment that starts with a "gap" paragraph. Qt merges a
  fragment's first paragraph into the block at the cursor and keeps that block's format, so the
  cursor always sits in an empty gap-formatted block: the merge is then harmless.
- Block 0 is reserved for the "Show earlier messages" link. ``load_history`` renders only the
  newest page: Markdown plus pygments cost ~0.3 ms a message and Qt's HTML import and layout
  about as much again, growing faster than linearly (5,000 messages at once took seconds).
  Older pages are inserted after block 0 when the user scrolls to the top, keeping what they
  were reading in place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote

from PySide6.QtCore import QEvent, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import (
    QColor,
    QDesktopServices,
    QGuiApplication,
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
)
from PySide6.QtWidgets import QTextBrowser, QWidget

from valis_desktop.ui.message_html import (
    GAP,
    GAP_PIXEL_SIZE,
    RESENT,
    HistoryItem,
    MessageTheme,
    message_html,
    stream_header_html,
)

__all__ = ["ChatView", "HistoryItem"]

_EXTERNAL_SCHEMES = frozenset({"http", "https", "mailto"})


@dataclass(slots=True)
class _Stream:
    header: QTextCursor  # start of the header block; keeps its place when text is inserted there
    end: QTextCursor  # just after the last streamed character, likewise
    chunks: list[str]
    note: str = ""


@dataclass(slots=True)
class _Entry:
    serial: int  # names the entry in copy links; message ids are not guaranteed unique
    item: HistoryItem
    code_blocks: tuple[str, ...] = ()
    stream: _Stream | None = None


class ChatView(QTextBrowser):
    """One tab's conversation: user messages, streamed assistant answers and notices."""

    retry_requested = Signal(str)
    retry_next_requested = Signal(str)
    resend_requested = Signal(str)
    """The id of a stored user message that was never sent, to send now."""

    def __init__(self, parent: QWidget | None = None, *, page_size: int = 200) -> None:
        """``page_size`` is how many messages ``load_history`` and each earlier page show."""
        super().__init__(parent)
        self._page_size = max(1, page_size)
        self._page_chars = 400 * self._page_size  # long answers make a page shorter
        self._entries: list[_Entry] = []
        self._shown_from = 0  # entries before this index are not in the document yet
        self._streams: dict[str, _Entry] = {}
        self._by_serial: dict[int, _Entry] = {}
        self._next_serial = 0
        self._pinned = True
        self._theme = MessageTheme.from_palette(self.palette())
        #: Opens http(s) and mailto links; a test may replace it.
        self.open_external: Callable[[QUrl], object] = QDesktopServices.openUrl
        self._earlier_timer = QTimer(self)
        self._earlier_timer.setSingleShot(True)
        self._earlier_timer.setInterval(0)
        self._earlier_timer.timeout.connect(self.show_earlier)

        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.setAccessibleName("Conversation")
        self.setAccessibleDescription("The messages of this chat. Tab moves between links.")
        self.anchorClicked.connect(self._on_anchor)
        self.highlighted.connect(self._on_highlighted)
        bar = self.verticalScrollBar()
        bar.valueChanged.connect(self._on_scrolled)
        bar.rangeChanged.connect(self._on_range_changed)
        self._reset_document()

    # -- the interface the chat tab drives -------------------------------------------------

    def add_user_message(self, message_id: str, text: str) -> None:
        """Append what the user sent, and scroll to it."""
        self._append_entry(HistoryItem(message_id, "user", text))
        self._pinned = True
        self._scroll_to_bottom()

    def add_notice(self, text: str) -> None:
        """Append a small centred line, such as "Persona changed to Coach"."""
        self._append_entry(HistoryItem("", "notice", text))

    def begin_answer(self, message_id: str) -> None:
        """Open the assistant message ``message_id`` at the end; text streams into it."""
        if message_id in self._streams:
            return
        entry = self._new_entry(HistoryItem(message_id, "assistant", "", status="streaming"))
        self._entries.append(entry)
        self._open_stream(entry, note="", chunks=[])
        self._streams[message_id] = entry
        self._follow()

    def set_answer_note(self, message_id: str, note: str) -> None:
        """Show ``note`` (e.g. "loading model…") in the open answer's header until text arrives."""
        entry = self._streams.get(message_id)
        if entry is None or entry.stream is None or entry.stream.chunks:
            return
        entry.stream.note = note
        self._write_header(entry.stream)

    def append_text(self, message_id: str, text: str) -> None:
        """Add a batch of streamed text at the end of the open answer: one plain insert."""
        entry = self._streams.get(message_id)
        if entry is None or entry.stream is None or not text:
            return
        stream = entry.stream
        if not stream.chunks and stream.note:
            stream.note = ""
            self._write_header(stream)
        stream.chunks.append(text)
        cursor = QTextCursor(self.document())
        cursor.setPosition(stream.end.position())
        # A "\r" would open a paragraph of its own; "\r\n" may be split across two batches.
        cursor.insertText(text.replace("\r", ""), QTextCharFormat())
        stream.end.setPosition(cursor.position())
        self._follow()

    def finish_answer(
        self,
        message_id: str,
        *,
        status: str,
        text: str,
        provider: str | None,
        first_chunk_seconds: float | None,
        chars_per_second: float | None,
        error: str = "",
        can_retry_next: bool = True,
        passed_over: str = "",
        left_out: int = 0,
    ) -> None:
        """Replace the streamed text with rendered Markdown and add the footer.

        ``status`` is "answered", "failed", "stopped" or "interrupted"; the last three keep the
        partial text, say what happened and offer Retry links. ``passed_over`` says why the
        providers before the one that answered did not; ``left_out`` how many earlier messages
        its context had no room for.
        """
        item = HistoryItem(
            message_id,
            "assistant",
            text,
            status,
            provider,
            first_chunk_seconds,
            chars_per_second,
            error,
            can_retry_next,
            passed_over,
            left_out,
        )
        entry = self._streams.pop(message_id, None)
        if entry is None or entry.stream is None:
            self._append_entry(item)  # finished without ever opening: a failure before text
            return
        stream, entry.stream = entry.stream, None
        entry.item = item
        pinned, value = self._pinned, self.verticalScrollBar().value()
        cursor = QTextCursor(self.document())
        cursor.beginEditBlock()
        cursor.setPosition(stream.header.position())
        header = cursor.blockFormat()
        cursor.setPosition(stream.end.position(), QTextCursor.MoveMode.KeepAnchor)
        cursor.removeSelectedText()
        cursor.setBlockFormat(header)  # the removal left the last body block's format
        cursor.insertHtml(self._entry_html(entry))
        cursor.endEditBlock()
        self._pinned = pinned
        if pinned:
            self._scroll_to_bottom()
        else:
            self.verticalScrollBar().setValue(value)

    def mark_resent(self, message_id: str) -> None:
        """The never-sent user message ``message_id`` was sent again: it says so instead of
        offering to send it."""
        for entry in self._entries:
            if entry.item.message_id == message_id and entry.item.role == "user":
                entry.item = replace(entry.item, status=RESENT)
                break
        else:
            return
        pinned, value = self._pinned, self.verticalScrollBar().value()
        self._rebuild()
        if not pinned:
            self._pinned = False
            self.verticalScrollBar().setValue(value)

    def load_history(self, items: Sequence[HistoryItem]) -> None:
        """Replace the conversation with ``items``; only the newest page is rendered now."""
        self._streams.clear()
        self._by_serial.clear()
        self._entries = [self._new_entry(item) for item in items]
        self._shown_from = self._page_start(len(self._entries))
        self._pinned = True
        self._rebuild()

    def clear_conversation(self) -> None:
        """Remove every message."""
        self.load_history(())

    def show_earlier(self) -> None:
        """Render the page of messages before the first one shown, keeping the view in place."""
        if self._shown_from == 0:
            return
        start = self._page_start(self._shown_from)
        page = "".join(GAP + self._entry_html(e) for e in self._entries[start : self._shown_from])
        document, bar = self.document(), self.verticalScrollBar()
        layout = document.documentLayout()
        anchor = document.firstBlock().next()
        before, value = layout.blockBoundingRect(anchor).top(), bar.value()
        cursor = QTextCursor(document.firstBlock())
        cursor.movePosition(QTextCursor.MoveOperation.EndOfBlock)
        cursor.insertBlock(*self._gap_formats())
        cursor.insertHtml(page)
        self._shown_from = start
        self._write_top_bar()
        layout.documentSize()  # finish the layout so the scroll range is complete
        bar.setValue(value + round(layout.blockBoundingRect(anchor).top() - before))

    def scroll_to_message(self, message_id: str) -> bool:
        """Scroll the message ``message_id`` to the top of the view and select it, rendering
        earlier pages first if it is not shown yet. False if there is no such message."""
        index = next(
            (i for i, entry in enumerate(self._entries) if entry.item.message_id == message_id),
            None,
        )
        if not message_id or index is None:
            return False
        while self._shown_from > index:
            self.show_earlier()
        # Every shown entry opens with exactly one gap block (block 0 is the top bar): the
        # entry is found by counting them, so nothing about it needs to be remembered.
        wanted, seen = index - self._shown_from, -1
        start = end = None
        block = self.document().firstBlock().next()
        while block.isValid() and end is None:
            size = block.charFormat().property(QTextCharFormat.Property.FontPixelSize)
            if block.text() == "\xa0" and size == GAP_PIXEL_SIZE:
                seen += 1
                if seen == wanted:
                    start = block
                elif seen == wanted + 1:
                    end = block
            block = block.next()
        if start is None:
            return False
        cursor = QTextCursor(self.document())
        cursor.setPosition(start.next().position() if start.next().isValid() else start.position())
        last = end.position() - 1 if end is not None else self.document().characterCount() - 1
        cursor.setPosition(max(cursor.position(), last), QTextCursor.MoveMode.KeepAnchor)
        self.setTextCursor(cursor)
        layout = self.document().documentLayout()
        layout.documentSize()  # finish the layout so the block's place is known
        self.verticalScrollBar().setValue(round(layout.blockBoundingRect(start).top()))
        return True

    def shown_message_count(self) -> int:
        """How many messages are in the document; the others wait behind "Show earlier"."""
        return len(self._entries) - self._shown_from

    def loadResource(self, type: int, name: QUrl | str) -> Any:
        """Load nothing: no remote image, no local file a model named, ever."""
        return None

    # -- building the document ---------------------------------------------------------------

    def _new_entry(self, item: HistoryItem) -> _Entry:
        entry = _Entry(self._next_serial, item)
        self._by_serial[entry.serial] = entry
        self._next_serial += 1
        return entry

    def _append_entry(self, item: HistoryItem) -> None:
        entry = self._new_entry(item)
        self._entries.append(entry)
        self._append_html(GAP + self._entry_html(entry))
        self._follow()

    def _page_start(self, end: int) -> int:
        start, chars = end, 0
        while start > 0 and end - start < self._page_size and chars < self._page_chars:
            start -= 1
            chars += len(self._entries[start].item.text)
        return start

    def _reset_document(self) -> None:
        document = self.document()
        document.clear()
        document.setUndoRedoEnabled(False)
        document.setDefaultStyleSheet(self._theme.stylesheet())
        document.setDocumentMargin(12)
        top = QTextBlockFormat()
        top.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        cursor = QTextCursor(document)
        cursor.setBlockFormat(top)
        cursor.setBlockCharFormat(self._gap_formats()[1])  # an empty top bar stays thin

    def _rebuild(self) -> None:
        """Re-create the document from the entries: history loads and palette changes."""
        self._reset_document()
        pending: list[str] = []
        for entry in self._entries[self._shown_from :]:
            if entry.stream is None:
                pending.append(GAP + self._entry_html(entry))
                continue
            if pending:
                self._append_html("".join(pending))
                pending = []
            self._open_stream(entry, note=entry.stream.note, chunks=entry.stream.chunks)
        if pending:
            self._append_html("".join(pending))
        self._write_top_bar()
        self.document().documentLayout().documentSize()
        self._follow()

    def _append_html(self, fragment: str) -> None:
        """Insert ``fragment`` (which starts with a gap paragraph) at the end of the document."""
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertBlock(*self._gap_formats())
        cursor.insertHtml(fragment)

    def _open_stream(self, entry: _Entry, *, note: str, chunks: list[str]) -> None:
        self._append_html(f'{GAP}<p class="head">{stream_header_html("")}</p>')
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        header = QTextCursor(cursor.block())
        header.setKeepPositionOnInsert(True)
        body = QTextBlockFormat()
        body.setBottomMargin(6)
        cursor.insertBlock(body, QTextCharFormat())
        cursor.insertText("".join(chunks).replace("\r", ""))
        end = QTextCursor(cursor)
        end.setKeepPositionOnInsert(True)
        entry.stream = _Stream(header, end, chunks, note)
        if note:
            self._write_header(entry.stream)

    def _write_header(self, stream: _Stream) -> None:
        cursor = QTextCursor(self.document())
        cursor.setPosition(stream.header.position())
        cursor.movePosition(QTextCursor.MoveOperation.EndOfBlock, QTextCursor.MoveMode.KeepAnchor)
        cursor.insertHtml(stream_header_html(stream.note))

    def _write_top_bar(self) -> None:
        cursor = QTextCursor(self.document().firstBlock())
        cursor.movePosition(QTextCursor.MoveOperation.EndOfBlock, QTextCursor.MoveMode.KeepAnchor)
        if not self._shown_from:
            cursor.removeSelectedText()
            return
        link = QTextCharFormat()
        link.setAnchor(True)
        link.setAnchorHref("valis:earlier")
        link.setForeground(QColor(self._theme.link))
        link.setFontUnderline(True)
        count = self._shown_from
        cursor.insertText(f"Show {count:,} earlier message{'s' if count > 1 else ''}", link)

    def _entry_html(self, entry: _Entry) -> str:
        prefix = f"valis:copy/{entry.serial}/"
        html, entry.code_blocks = message_html(entry.item, self._theme, prefix)
        return html

    # -- scrolling, links, palette -----------------------------------------------------------

    def _follow(self) -> None:
        if self._pinned:
            self._scroll_to_bottom()

    def _scroll_to_bottom(self) -> None:
        bar = self.verticalScrollBar()
        bar.setValue(bar.maximum())

    def _on_range_changed(self, _minimum: int, _maximum: int) -> None:
        self._follow()

    def _on_scrolled(self, value: int) -> None:
        bar = self.verticalScrollBar()
        self._pinned = value >= bar.maximum() - 4
        if value == bar.minimum() < bar.maximum() and self._shown_from:
            self._earlier_timer.start()  # not from inside the scroll bar's own signal

    def _on_anchor(self, url: QUrl) -> None:
        scheme = url.scheme().lower()
        if scheme in _EXTERNAL_SCHEMES:
            self.open_external(url)
            return
        if scheme != "valis":
            return  # javascript:, file: and the like do nothing
        action, _, argument = url.path(QUrl.ComponentFormattingOption.FullyEncoded).partition("/")
        if action == "copy":
            serial, _, index = argument.partition("/")
            entry = self._by_serial.get(int(serial)) if serial.isdigit() else None
            if entry is not None and index.isdigit() and int(index) < len(entry.code_blocks):
                QGuiApplication.clipboard().setText(entry.code_blocks[int(index)])
        elif action == "retry":
            self.retry_requested.emit(unquote(argument))
        elif action == "retry-next":
            self.retry_next_requested.emit(unquote(argument))
        elif action == "resend":
            self.resend_requested.emit(unquote(argument))
        elif action == "earlier":
            self.show_earlier()

    def _on_highlighted(self, url: QUrl) -> None:
        external = url.scheme().lower() in _EXTERNAL_SCHEMES
        self.setToolTip(url.toDisplayString() if external else "")

    def changeEvent(self, event: QEvent) -> None:
        """Re-render in the new colours when the palette changes (light ↔ dark)."""
        super().changeEvent(event)
        if event.type() != QEvent.Type.PaletteChange or not hasattr(self, "_entries"):
            return
        theme = MessageTheme.from_palette(self.palette())
        if theme == self._theme:
            return
        self._theme = theme
        pinned, value = self._pinned, self.verticalScrollBar().value()
        self._rebuild()
        if not pinned:
            self._pinned = False
            self.verticalScrollBar().setValue(value)

    def _gap_formats(self) -> tuple[QTextBlockFormat, QTextCharFormat]:
        block, char = QTextBlockFormat(), QTextCharFormat()
        block.setTopMargin(0)
        block.setBottomMargin(0)
        char.setProperty(QTextCharFormat.Property.FontPixelSize, GAP_PIXEL_SIZE)
        return block, char
