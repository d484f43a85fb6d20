"""The entries of the History's list: what a row holds, how it is built from the store's
conversations and search hits (with their dates as people say them), and how it is drawn.

A row travels on its list item (``row_item``, ``row_of``); ``RowDelegate`` paints it.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from PySide6.QtCore import (
    QDate,
    QLocale,
    QModelIndex,
    QPersistentModelIndex,
    QRect,
    QSize,
    Qt,
    QTime,
)
from PySide6.QtGui import (
    QAbstractTextDocumentLayout,
    QColor,
    QFont,
    QFontMetrics,
    QPainter,
    QPalette,
    QTextDocument,
)
from PySide6.QtWidgets import (
    QListWidget,
    QListWidgetItem,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
)

from valis_desktop.api import Role
from valis_desktop.core.store import ConversationSummary, SearchHit

__all__ = [
    "Row",
    "RowDelegate",
    "conversation_row",
    "count_text",
    "hit_row",
    "row_item",
    "row_of",
    "snippet_html",
    "when_text",
]

_ROW_ROLE = Qt.ItemDataRole.UserRole + 1
_PAD, _GAP = 8, 3
_LEFT = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
_RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
_ELIDE = Qt.TextElideMode.ElideRight


@dataclass(frozen=True, slots=True)
class Row:
    """One entry of the list: a conversation, or a message that matches the search."""

    conversation_id: str
    message_id: str
    """The matching message; empty for a conversation."""
    title: str
    corner: str
    """Right of the title: when it was updated, or who wrote the message and when."""
    detail: str
    """Below the title: the first line of a conversation, or a hit's snippet as plain text."""
    detail_corner: str = ""
    snippet_html: str = ""
    """A hit's snippet as rich text: the matches in bold, everything else escaped."""

    @property
    def text(self) -> str:
        """The whole row as plain text (what a screen reader says)."""
        parts = (self.title, self.corner, self.detail, self.detail_corner)
        return " — ".join(part for part in parts if part)


def snippet_html(parts: tuple[tuple[str, bool], ...]) -> str:
    """``SearchHit.parts`` as rich text on one line: the matches in bold, all text escaped."""
    pieces = ((html.escape(re.sub(r"\s+", " ", text)), match) for text, match in parts)
    return "".join(f"<b>{text}</b>" if match else text for text, match in pieces)


def count_text(number: int, noun: str) -> str:
    """``number`` of ``noun`` in words: "1 message", "1,200 messages"."""
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def when_text(moment: datetime, now: datetime) -> str:
    """``moment`` in local time as the list shows it, in the user's locale: "Today, 14:05",
    "Yesterday, …", "3 Mar, 09:30", or only the date for another year."""
    local, locale = moment.astimezone(), QLocale()
    time = locale.toString(QTime(local.hour, local.minute), QLocale.FormatType.ShortFormat)
    date = local.date()
    if date == now.date():
        return f"Today, {time}"
    if date == (now - timedelta(days=1)).date():
        return f"Yesterday, {time}"
    shown = QDate(date.year, date.month, date.day)
    if date.year == now.year:
        return f"{locale.toString(shown, 'd MMM')}, {time}"
    return locale.toString(shown, "d MMM yyyy")


def conversation_row(summary: ConversationSummary, now: datetime) -> Row:
    """The row of a stored conversation."""
    title = summary.title or summary.first_line or "Untitled conversation"
    facts = [count_text(summary.message_count, "message")]
    if summary.tab_position is not None:
        facts.append(f"open in tab {summary.tab_position + 1}")
    detail = summary.first_line if summary.first_line != title else ""
    return Row(summary.id, "", title, when_text(summary.updated_at, now), detail, " · ".join(facts))


def hit_row(hit: SearchHit, now: datetime) -> Row:
    """The row of a message that matches a search."""
    corner = f"{'You' if hit.role is Role.USER else 'Assistant'} · {when_text(hit.created_at, now)}"
    title = hit.conversation_title or "Untitled conversation"
    plain = re.sub(r"\s+", " ", "".join(text for text, _ in hit.parts))
    rich = snippet_html(hit.parts)
    return Row(hit.conversation_id, hit.message_id, title, corner, plain, snippet_html=rich)


def row_item(row: Row) -> QListWidgetItem:
    """A list item that carries ``row``; its text is the row's plain text."""
    item = QListWidgetItem(row.text)
    item.setData(_ROW_ROLE, row)
    return item


def row_of(item: QListWidgetItem) -> Row:
    """The row that ``item`` carries (an item made by ``row_item``)."""
    row: Row = item.data(_ROW_ROLE)
    return row


def _snippet(rich: str, font: QFont, width: int) -> tuple[QTextDocument, int]:
    """The snippet laid out ``width`` wide, and the height of its first two lines."""
    document = QTextDocument()
    document.setDefaultFont(font)
    document.setDocumentMargin(0)
    document.setHtml(rich)
    document.setTextWidth(width)
    document.size()  # lays it out
    layout = document.firstBlock().layout()
    shown = min(layout.lineCount(), 2)
    return document, math.ceil(layout.lineAt(shown - 1).rect().bottom()) if shown else 0


class RowDelegate(QStyledItemDelegate):
    """Paints a ``Row``: the title and its corner, then the detail line or the snippet."""

    def __init__(self, view: QListWidget) -> None:
        super().__init__(view)
        self._view = view

    def sizeHint(
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QSize:
        """Two lines; three for a snippet that needs two at the view's width."""
        row: Row = index.data(_ROW_ROLE)
        line = body = option.fontMetrics.lineSpacing()
        if row.snippet_html:
            width = self._view.viewport().width() - 2 * _PAD
            body = max(line, _snippet(row.snippet_html, option.font, width)[1])
        return QSize(200, 2 * _PAD + _GAP + line + body)

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        """The item's background as the style draws it, then the row's text."""
        row: Row = index.data(_ROW_ROLE)
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""
        style = self._view.style()
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, self._view)
        selected = bool(opt.state & QStyle.StateFlag.State_Selected)
        role = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        text = opt.palette.color(role)
        muted = text if selected else opt.palette.color(QPalette.ColorRole.PlaceholderText)
        rect = opt.rect.adjusted(_PAD, _PAD, -_PAD, -_PAD)
        line = QFontMetrics(opt.font).lineSpacing()
        body = QRect(rect.left(), rect.top() + line + _GAP, rect.width(), rect.height() - line)
        strong = QFont(opt.font)
        strong.setBold(True)
        painter.save()
        top = QRect(rect.topLeft(), QSize(rect.width(), line))
        _draw_line(painter, top, (row.title, strong, text), (row.corner, opt.font, muted))
        if row.snippet_html:
            document, height = _snippet(row.snippet_html, opt.font, body.width())
            context = QAbstractTextDocumentLayout.PaintContext()
            context.palette.setColor(QPalette.ColorRole.Text, text)
            painter.translate(body.topLeft())
            painter.setClipRect(QRect(0, 0, body.width(), height))  # two lines at most
            document.documentLayout().draw(painter, context)
        else:
            below = QRect(body.topLeft(), QSize(body.width(), line))
            left, right = (row.detail, opt.font, muted), (row.detail_corner, opt.font, muted)
            _draw_line(painter, below, left, right)
        painter.restore()


_Text = tuple[str, QFont, QColor]


def _draw_line(painter: QPainter, rect: QRect, left: _Text, right: _Text) -> None:
    """``right`` whole at the right of ``rect``, and ``left`` in the room left, elided."""
    text, font, colour = right
    painter.setFont(font)
    painter.setPen(colour)
    painter.drawText(rect, _RIGHT, text)
    room = max(0, rect.width() - QFontMetrics(font).horizontalAdvance(text) - 2 * _PAD)
    text, font, colour = left
    painter.setFont(font)
    painter.setPen(colour)
    painter.drawText(rect, _LEFT, QFontMetrics(font).elidedText(text, _ELIDE, room))
