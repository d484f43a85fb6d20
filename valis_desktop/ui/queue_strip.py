"""The messages waiting in a tab's queue, each with a button to cancel it before it starts."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget

_PREVIEW = 90


def preview(text: str, limit: int = _PREVIEW) -> str:
    """The first line of ``text``, shortened to ``limit`` characters."""
    line = " ".join(text.split("\n", 1)[0].split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


class QueueStrip(QWidget):
    cancel_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Queued messages")
        self._rows: dict[str, QWidget] = {}
        self._cancel_buttons: dict[str, QToolButton] = {}
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(2)
        self._title = QLabel(self)
        self._title.setAccessibleName("Queued count")
        self._layout.addWidget(self._title)
        self.setVisible(False)

    @property
    def count(self) -> int:
        return len(self._rows)

    def request_ids(self) -> list[str]:
        return list(self._rows)

    def cancel_button(self, request_id: str) -> QToolButton:
        return self._cancel_buttons[request_id]

    def add(self, request_id: str, text: str) -> None:
        row = QWidget(self)
        layout = QHBoxLayout(row)
        layout.setContentsMargins(8, 0, 0, 0)
        label = QLabel(preview(text), row)
        label.setToolTip(text[:2000])
        label.setTextFormat(Qt.TextFormat.PlainText)
        cancel = QToolButton(row)
        cancel.setText("Cancel")
        cancel.setAccessibleName(f"Cancel queued message: {preview(text, 40)}")
        cancel.setToolTip("Remove this message from the queue before it is sent")
        cancel.clicked.connect(lambda: self.cancel_requested.emit(request_id))
        layout.addWidget(label, 1)
        layout.addWidget(cancel)
        self._layout.addWidget(row)
        self._rows[request_id] = row
        self._cancel_buttons[request_id] = cancel
        self._refresh()

    def remove(self, request_id: str) -> None:
        row = self._rows.pop(request_id, None)
        self._cancel_buttons.pop(request_id, None)
        if row is not None:
            row.hide()
            row.deleteLater()
            self._refresh()

    def _refresh(self) -> None:
        count = len(self._rows)
        self._title.setText(f"{count} queued — sent in order when the answer above finishes")
        self.setVisible(count > 0)
