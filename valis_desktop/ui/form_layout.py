"""Small layout pieces that the settings windows share: wrapped text, titled groups, scrolling."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGroupBox, QLabel, QScrollArea, QVBoxLayout, QWidget


def wrapped_label(text: str, parent: QWidget) -> QLabel:
    """A label for prose: wrapped, and never read as rich text."""
    label = QLabel(text, parent)
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.PlainText)
    return label


def group_box(title: str, content: QWidget, hint: str = "") -> QGroupBox:
    """``content`` in a titled group, below ``hint`` when there is one."""
    group = QGroupBox(title)
    layout = QVBoxLayout(group)
    if hint:
        layout.addWidget(wrapped_label(hint, group))
    layout.addWidget(content)
    return group


def scroll_area(content: QWidget, parent: QWidget | None = None) -> QScrollArea:
    """``content`` in a frameless area that scrolls when the window is too small."""
    area = QScrollArea(parent)
    area.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # Tab goes to the fields, not the frame
    area.setWidgetResizable(True)
    area.setFrameShape(QScrollArea.Shape.NoFrame)
    area.setWidget(content)
    return area
