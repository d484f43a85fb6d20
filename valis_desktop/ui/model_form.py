"""A form generated from a pydantic model: one editor per field, its problem shown beneath it.

The form edits the *raw* table of a settings file, not a validated model: it shows what the file
holds, even values the model rejects, and ``read()`` returns only what the file should hold. A
field the file left out and the user did not change stays out, so it keeps following its
default.
"""

from __future__ import annotations

import enum
import json
import types
from collections.abc import Collection, Iterable, Mapping
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from PySide6.QtCore import Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QFormLayout, QGroupBox, QLabel, QVBoxLayout, QWidget

from valis_desktop.ui.form_fields import (
    UNSET,
    InputError,
    Row,
    check_row,
    choice_row,
    pairs_row,
    parse_float,
    parse_int,
    parse_json,
    render_list,
    render_number,
    split_list,
    text_row,
)

Loc = tuple[str | int, ...]
FieldError = tuple[Loc, str]
"""Where a problem is (a pydantic ``loc``) and what it is, worded for the user."""

REQUIRED = "Required"
ERROR_STYLE = "color: #c62828;"
_WORDS = {"id": "ID", "url": "URL", "api": "API", "http": "HTTP", "env": "environment variable"}


def humanize(name: str) -> str:
    """``api_key_env`` → "API key environment variable"."""
    text = " ".join(_WORDS.get(word, word) for word in name.split("_") if word)
    return text[:1].upper() + text[1:]


def with_mnemonic(text: str, taken: set[str]) -> str:
    """``text`` with an ``&`` before its first letter that no other label uses yet."""
    text = text.replace("&", "&&")
    for index, char in enumerate(text):
        if char.isalnum() and char.lower() not in taken:
            taken.add(char.lower())
            return text[:index] + "&" + text[index:]
    return text


def error_messages(error: ValidationError) -> list[FieldError]:
    """``error``'s problems as (where, message); the messages never quote the input."""
    found = error.errors(include_url=False, include_input=False)
    return [
        (tuple(problem["loc"]), _wording(problem["type"], problem["msg"], problem.get("ctx", {})))
        for problem in found
    ]


def error_label(parent: QWidget | None = None) -> QLabel:
    """A hidden, red, word-wrapped label for problems."""
    label = QLabel(parent)
    label.setWordWrap(True)
    label.setStyleSheet(ERROR_STYLE)
    label.setTextFormat(label.textFormat().PlainText)
    label.hide()
    return label


_PATTERNS = {
    r"^[a-z0-9][a-z0-9_.-]{0,63}$": "Use lower-case letters, digits, “.”, “_” and “-”, "
    "starting with a letter or a digit",
    r"^[A-Za-z_][A-Za-z0-9_]*$": "Use letters, digits and “_”, not starting with a digit",
}
_BOUNDS = {
    "greater_than_equal": ("ge", "Must be at least {}"),
    "greater_than": ("gt", "Must be more than {}"),
    "less_than_equal": ("le", "Must be at most {}"),
    "less_than": ("lt", "Must be less than {}"),
}


def _wording(kind: str, message: str, context: Mapping[str, Any]) -> str:
    if kind == "missing":
        return REQUIRED
    if kind == "extra_forbidden":
        return "Not a known setting: remove it"
    if kind in _BOUNDS and _BOUNDS[kind][0] in context:
        key, text = _BOUNDS[kind]
        return text.format(render_number(context[key]))
    if kind == "string_pattern_mismatch":
        pattern = str(context.get("pattern", ""))
        return _PATTERNS.get(pattern, f"Does not have the expected form ({pattern})")
    message = message.removeprefix("Value error, ")
    return message[:1].upper() + message[1:]


class ModelForm(QWidget):
    """Edits one raw table that ``model`` validates; a widget per field, errors beneath them.

    ``labels`` and ``hints`` override fields' titles and descriptions (dotted names reach into
    nested models); ``suggest`` names text fields that offer suggestions (``suggest()``);
    ``mnemonics`` is shared with the window's other labels so that no two collide.
    """

    changed = Signal()

    def __init__(
        self,
        model: type[BaseModel],
        values: Mapping[str, Any] | None = None,
        *,
        exclude: Collection[str] = (),
        labels: Mapping[str, str] | None = None,
        hints: Mapping[str, str] | None = None,
        suggest: Collection[str] = (),
        mnemonics: set[str] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.model = model
        self._initial: dict[str, Any] = {}
        self._rows: dict[str, Row] = {}
        self._mnemonics = set() if mnemonics is None else mnemonics
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self._layout = QFormLayout()
        outer.addLayout(self._layout)
        outer.addStretch(1)  # spare height goes below the form, not between its rows
        self._layout.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self.problems = error_label(self)
        self.problems.setAccessibleName("Problems of this form")
        self._layout.addRow(self.problems)
        for name, field in model.model_fields.items():
            if name not in exclude:
                self._add_row(name, field, labels or {}, hints or {}, name in suggest)
        self.set_values(values or {})

    def set_values(self, values: Mapping[str, Any]) -> None:
        """Show ``values`` (a raw table); fields it leaves out show their defaults."""
        self._initial = dict(values)
        for name, row in self._rows.items():
            row.show(values.get(name, {} if row.form else row.default))
            row.touched = False

    def add_row(self, label: QLabel, field: QWidget, *, mnemonic: bool = True) -> None:
        """A row of the caller's own below the model's fields, aligned with them."""
        if mnemonic:
            label.setText(with_mnemonic(label.text(), self._mnemonics))
        label.setBuddy(field)
        self._layout.addRow(label, field)

    def read(self) -> tuple[dict[str, Any], list[FieldError]]:
        """The table to write, and the fields whose text could not be understood."""
        table: dict[str, Any] = {}
        errors: list[FieldError] = []
        for name, row in self._rows.items():
            if row.form is not None:
                value, inner = row.form.read()
                errors += [((name, *loc), message) for loc, message in inner]
                if value or name in self._initial:
                    table[name] = value
                continue
            try:
                value = row.read()
            except InputError as error:
                errors.append(((name,), str(error)))
                continue
            kept = name in self._initial or value != row.default
            if value is not UNSET and value is not None and kept:
                table[name] = value
        if self.model.model_config.get("extra") == "allow":
            table |= {k: v for k, v in self._initial.items() if k not in self.model.model_fields}
        return table, errors

    def validate(self, extra: Iterable[FieldError] = ()) -> BaseModel | None:
        """Validate what is entered, show each problem by its field; the model, or ``None``."""
        table, errors = self.read()
        errors += extra
        instance = None
        try:
            instance = self.model.model_validate(table)
        except ValidationError as error:
            errors += error_messages(error)
        self.show_errors(errors)
        return None if errors else instance

    def show_errors(self, errors: Iterable[FieldError]) -> list[FieldError]:
        """Show each problem beneath its field, the first one per field; those that belong to
        no field go at the top of the form and are returned."""
        placed: dict[str, str] = {}
        nested: dict[str, list[FieldError]] = {}
        elsewhere: list[FieldError] = []
        for loc, message in errors:
            name = str(loc[0]) if loc else ""
            row = self._rows.get(name)
            if row is None:
                elsewhere.append((loc, message))
            elif row.form is not None and len(loc) > 1:
                nested.setdefault(name, []).append((loc[1:], message))
            else:
                placed.setdefault(name, message)
        for name, row in self._rows.items():
            if row.form is not None:
                inner = row.form.show_errors(nested.get(name, []))
                elsewhere += [((name, *loc), message) for loc, message in inner]
            self._show_error(row, placed.get(name, ""))
        text = "\n".join(f"{'.'.join(map(str, loc)) or 'This entry'}: {m}" for loc, m in elsewhere)
        self.problems.setText(text)
        self.problems.setVisible(bool(text))
        return elsewhere

    def has_errors(self) -> bool:
        """Whether any problem is shown, here or in a nested form."""
        return not self.problems.isHidden() or any(
            (row.error is not None and not row.error.isHidden())
            or (row.form is not None and row.form.has_errors())
            for row in self._rows.values()
        )

    def focus_first_error(self) -> bool:
        """Put the focus on the first field with a problem; whether there was one."""
        for row in self._rows.values():
            if (row.form is not None and row.form.focus_first_error()) or (
                row.error is not None and not row.error.isHidden()
            ):
                row.widget.setFocus()
                return True
        return False

    def editor(self, name: str) -> QWidget:
        """The widget editing ``name`` (dotted for a nested model's field)."""
        head, _, rest = name.partition(".")
        row = self._rows[head]
        return row.form.editor(rest) if rest and row.form else row.widget

    def error_text(self, name: str) -> str:
        """The problem shown beneath ``name``'s field, or ``""``."""
        head, _, rest = name.partition(".")
        row = self._rows[head]
        if rest and row.form:
            return row.form.error_text(rest)
        return "" if row.error is None or row.error.isHidden() else row.error.text()

    def suggest(self, name: str, items: Iterable[str]) -> None:
        """Offer ``items`` in the list of ``name``, a field named in ``suggest``."""
        combo = self._rows[name].combo
        if combo is not None:
            text = combo.currentText()
            combo.clear()
            combo.addItems(list(items))
            combo.setEditText(text)

    def _add_row(
        self,
        name: str,
        field: FieldInfo,
        labels: Mapping[str, str],
        hints: Mapping[str, str],
        suggest: bool,
    ) -> None:
        title = labels.get(name) or field.title or humanize(name)
        hint = " ".join((hints.get(name) or field.description or "").split())
        row = self._editor_for(name, field, title, labels, hints, suggest)
        if not field.is_required():
            row.default = _plain(field.get_default(call_default_factory=True, validated_data={}))
        row.widget.setAccessibleName(title)
        if row.combo is not None and row.combo.lineEdit() is not None:
            row.combo.lineEdit().setAccessibleName(title)  # type: ignore[union-attr]
        if hint:
            row.widget.setToolTip(hint)
            row.widget.setAccessibleDescription(hint)
        row.error = error_label()
        row.error.setAccessibleName(f"{title}: problem")
        row.changed.connect(lambda *_: self._edited(row))
        self._rows[name] = row
        if row.form is not None:
            self._layout.addRow(row.widget)
            row.form._layout.addRow(row.error)
            return
        row.label = QLabel(with_mnemonic(title, self._mnemonics) + ":")
        row.label.setBuddy(row.widget)
        cell = QWidget(self)
        column = QVBoxLayout(cell)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(2)
        column.addWidget(row.widget)
        column.addWidget(row.error)
        if hint:
            note = QLabel(hint, cell)
            note.setWordWrap(True)
            note.setForegroundRole(QPalette.ColorRole.PlaceholderText)
            column.addWidget(note)
        column.addStretch(1)  # a wrapped note may be given more height than it needs
        self._layout.addRow(row.label, cell)

    def _editor_for(
        self,
        name: str,
        field: FieldInfo,
        title: str,
        labels: Mapping[str, str],
        hints: Mapping[str, str],
        suggest: bool,
    ) -> Row:
        kind, optional = _unwrap_optional(field.annotation)
        origin, args = get_origin(kind), get_args(kind)
        unset = "(not set)" if field.default is None else f"(default: {field.default})"
        if kind is bool:
            return (
                choice_row([(unset, UNSET), ("Yes", True), ("No", False)])
                if optional
                else check_row()
            )
        if origin is Literal or (isinstance(kind, type) and issubclass(kind, enum.Enum)):
            values = list(args) if origin is Literal else [member.value for member in kind]
            return choice_row([(unset, UNSET)] * optional + [(str(v), v) for v in values])
        if kind is int or kind is float:
            row = text_row(parse_int if kind is int else parse_float, render_number, suggest=False)
            row.widget.setMaximumWidth(row.widget.fontMetrics().horizontalAdvance("0") * 14)
            return row
        if kind is str:
            return text_row(str, str, suggest=suggest)
        if origin in (list, tuple, set, frozenset) and args[:1] == (str,):
            return text_row(split_list, render_list, empty=[], suggest=False)
        if origin is dict and args == (str, str):
            return pairs_row()
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            inner = ModelForm(
                kind,
                labels=_below(name, labels),
                hints=_below(name, hints),
                mnemonics=self._mnemonics,
            )
            group = QGroupBox(title)
            QVBoxLayout(group).addWidget(inner)
            show = lambda value: inner.set_values(value if isinstance(value, Mapping) else {})  # noqa: E731
            return Row(group, dict, show, inner.changed, form=inner)
        return text_row(parse_json, lambda value: json.dumps(value, default=str), suggest=False)

    def _edited(self, row: Row) -> None:
        row.touched = True
        self.changed.emit()

    def _show_error(self, row: Row, message: str) -> None:
        """A required field left empty is only marked red once the user has been in it."""
        assert row.error is not None
        quiet = message == REQUIRED and not row.touched
        row.error.setText(message)
        row.error.setVisible(bool(message))
        row.error.setStyleSheet("" if quiet else ERROR_STYLE)
        role = QPalette.ColorRole.PlaceholderText if quiet else QPalette.ColorRole.WindowText
        row.error.setForegroundRole(role)
        if row.label is not None:
            row.label.setStyleSheet(ERROR_STYLE if message and not quiet else "")


def _below(name: str, table: Mapping[str, str]) -> dict[str, str]:
    prefix = name + "."
    return {key.removeprefix(prefix): text for key, text in table.items() if key.startswith(prefix)}


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    """``X | None`` → (X, True); anything else → (it, False)."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _plain(value: Any) -> Any:
    """A default as the file would hold it."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    return value.value if isinstance(value, enum.Enum) else value
