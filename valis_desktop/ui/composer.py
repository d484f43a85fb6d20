"""Where the user types: Enter sends, Shift+Enter breaks the line, Esc stops the answer."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QPlainTextEdit, QWidget

_MIN_LINES = 2
_MAX_LINES = 8


class Composer(QPlainTextEdit):
    send_requested = Signal(str)
    stop_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Message")
        self.setAccessibleDescription(
            "Type a message. Enter sends, Shift+Enter starts a new line, Escape stops the answer."
        )
        self.setPlaceholderText("Message — Enter sends · Shift+Enter new line · Esc stops")
        self.setTabChangesFocus(True)
        self.document().contentsChanged.connect(self.updateGeometry)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not (
            event.modifiers() & Qt.KeyboardModifier.ShiftModifier
        ):
            self.submit()
            return
        if key == Qt.Key.Key_Escape:
            self.stop_requested.emit()
            return
        super().keyPressEvent(event)

    def submit(self) -> None:
        """Emit the text to send; the tab clears the composer once it is accepted."""
        if self.toPlainText().strip():
            self.send_requested.emit(self.toPlainText())

    def sizeHint(self) -> QSize:
        hint = super().sizeHint()
        line = self.fontMetrics().lineSpacing()
        lines = min(max(self.document().lineCount(), _MIN_LINES), _MAX_LINES)
        margins = self.contentsMargins()
        frame = 2 * self.frameWidth() + margins.top() + margins.bottom()
        hint.setHeight(lines * line + frame + 8)
        return hint

    def minimumSizeHint(self) -> QSize:
        return QSize(100, self.fontMetrics().lineSpacing() * _MIN_LINES + 12)
