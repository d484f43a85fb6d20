"""The editors of a ``ModelForm``'s fields, one kind of value each, and how they read text.

A row reads the raw value its editor holds: ``UNSET`` when nothing is entered, so that the key
stays out of the table; an ``InputError`` when the text cannot be understood.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import SignalInstance
from PySide6.QtWidgets import QCheckBox, QComboBox, QLabel, QLineEdit, QPlainTextEdit, QWidget

if TYPE_CHECKING:
    from valis_desktop.ui.model_form import ModelForm


class Unset(enum.Enum):
    """Nothing entered: the key stays out of the table, so the model's default applies."""

    UNSET = enum.auto()


UNSET = Unset.UNSET


class InputError(ValueError):
    """Text that an editor cannot turn into a value of its field's type."""


@dataclass(eq=False)
class Row:
    """One field: its widget, how to read and show its raw value, and its labels."""

    widget: QWidget
    read: Callable[[], Any]
    """The raw value, ``UNSET``, or an ``InputError``."""
    show: Callable[[Any], None]
    changed: SignalInstance
    form: ModelForm | None = None
    """A nested model's own form."""
    combo: QComboBox | None = None
    """The list of suggestions, for a text field that offers them."""
    default: Any = UNSET
    touched: bool = False
    label: QLabel | None = None
    error: QLabel | None = None


def text_row(
    parse: Callable[[str], Any], render: Callable[[Any], str], *, empty: Any = UNSET, suggest: bool
) -> Row:
    combo = QComboBox() if suggest else None
    if combo is not None:
        combo.setEditable(True)
        combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
    line = QLineEdit() if combo is None else combo.lineEdit()
    assert line is not None

    def read() -> Any:
        text = line.text().strip()
        return parse(text) if text else empty

    def show(value: Any) -> None:
        line.setText("" if value is None or value is UNSET else render(value))

    return Row(combo or line, read, show, line.textChanged, combo=combo)


def choice_row(options: list[tuple[str, Any]]) -> Row:
    combo = QComboBox()
    for text, value in options:
        combo.addItem(text, value)

    def show(value: Any) -> None:
        value = UNSET if value is None else value.value if isinstance(value, enum.Enum) else value
        index = next((i for i in range(combo.count()) if combo.itemData(i) == value), -1)
        if index < 0:  # the file's value, shown as it is
            combo.addItem(f"{value} (not allowed)", value)
            index = combo.count() - 1
        combo.setCurrentIndex(index)

    return Row(combo, combo.currentData, show, combo.currentIndexChanged)


def check_row() -> Row:
    box = QCheckBox()
    return Row(box, box.isChecked, lambda value: box.setChecked(value is True), box.toggled)


def pairs_row() -> Row:
    """``dict[str, str]`` as "name: value" lines."""
    text = QPlainTextEdit()
    text.setTabChangesFocus(True)
    text.setPlaceholderText("One per line, as  name: value")
    text.setFixedHeight(text.fontMetrics().lineSpacing() * 3 + 14)

    def read() -> dict[str, str]:
        table: dict[str, str] = {}
        for number, line in enumerate(text.toPlainText().splitlines(), start=1):
            key, colon, value = line.partition(":")
            if line.strip() and (not colon or not key.strip()):
                raise InputError(f"Line {number}: write it as  name: value")
            if line.strip():
                table[key.strip()] = value.strip()
        return table

    def show(value: Any) -> None:
        pairs = value.items() if isinstance(value, Mapping) else ()
        text.setPlainText("\n".join(f"{key}: {item}" for key, item in pairs))

    return Row(text, read, show, text.textChanged)


def parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InputError("Enter a whole number, such as 4") from None


def parse_float(text: str) -> float | int:
    try:
        number = float(text)
    except ValueError:
        raise InputError("Enter a number, such as 2.5") from None
    return int(number) if number.is_integer() and "." not in text else number


def parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise InputError('Enter a JSON value, such as ["a", "b"] or {"a": 1}') from None


def render_number(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def render_list(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


def split_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]
