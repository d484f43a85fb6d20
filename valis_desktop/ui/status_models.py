"""Qt item models for the status panel: providers and requests in flight.

Both models are refreshed from an ``EngineSnapshot`` many times a second. They diff the new
rows against the old ones by key and emit only row insertions, removals, moves and
``dataChanged``, never a model reset, so the views keep their selection and scroll position.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from PySide6.QtCore import (
    QAbstractItemModel,
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
)
from PySide6.QtGui import QColor, QFont

from valis_desktop.core.circuit_breaker import BreakerState
from valis_desktop.core.provider_manager import EngineSnapshot, ProviderStatus, RequestStatus
from valis_desktop.core.request import Phase

_Row = TypeVar("_Row")
_Index = QModelIndex | QPersistentModelIndex

_DISPLAY = Qt.ItemDataRole.DisplayRole
_TOOLTIP = Qt.ItemDataRole.ToolTipRole
_ALIGN = Qt.ItemDataRole.TextAlignmentRole
_BACKGROUND = Qt.ItemDataRole.BackgroundRole
_FONT = Qt.ItemDataRole.FontRole
_DECORATION = Qt.ItemDataRole.DecorationRole
_NUMBER_ALIGNMENT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
_TEXT_ALIGNMENT = int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
_DASH = "—"

# Each state's colour, as a solid swatch before the text (it stays visible on a selected row)
# and as a translucent tint of the cell: blended over the view's base colour, the tint stays
# readable with the palette's own text colour, light or dark. The state is always spelled out.
STATE_COLOURS: Mapping[BreakerState, QColor] = {
    BreakerState.CLOSED: QColor(46, 160, 67),
    BreakerState.HALF_OPEN: QColor(52, 120, 246),
    BreakerState.OPEN: QColor(236, 160, 0),
    BreakerState.NEEDS_ATTENTION: QColor(220, 48, 48),
}
STATE_TINTS: Mapping[BreakerState, QColor] = {
    state: QColor(colour.red(), colour.green(), colour.blue(), 72)
    for state, colour in STATE_COLOURS.items()
}

_STATE_TOOLTIPS: Mapping[BreakerState, str] = {
    BreakerState.CLOSED: "Closed: requests go to this provider normally.",
    BreakerState.OPEN: (
        "Open: the provider failed repeatedly (or asked us to slow down), so chats skip it "
        "until one probe request is let through. Reset to try it again now."
    ),
    BreakerState.HALF_OPEN: (
        "Half-open: the next request is a probe; success closes the breaker, failure opens "
        "it again for longer."
    ),
    BreakerState.NEEDS_ATTENTION: (
        "Needs attention: the provider refused our credentials or billing. Fix its settings, "
        "then Reset it."
    ),
}


def format_duration(seconds: float | None) -> str:
    """A latency in human units: "340 ms", "2.4 s", "17 s", "3 min 05 s"; a dash if unknown."""
    if seconds is None:
        return _DASH
    millis = round(seconds * 1000)
    if millis < 1000:
        return f"{max(millis, 0)} ms"
    if seconds < 9.95:
        return f"{seconds:.1f} s"
    return format_whole_seconds(seconds)


def format_whole_seconds(seconds: float) -> str:
    """An elapsed time to the second: "0 s", "42 s", "3 min 05 s", "1 h 02 min"."""
    whole = max(int(seconds), 0)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def state_text(status: ProviderStatus) -> str:
    """The breaker state as the panel spells it, with the countdown of an open breaker."""
    if status.state is BreakerState.OPEN and status.seconds_until_probe is not None:
        remaining = max(math.ceil(status.seconds_until_probe), 0)
        return f"open · probe in {format_whole_seconds(remaining)}"
    return str(status.state)


def can_reset(status: ProviderStatus) -> bool:
    """Whether resetting the provider's breaker would change anything the user cares about."""
    return status.state in (BreakerState.OPEN, BreakerState.NEEDS_ATTENTION)


@dataclass(frozen=True, slots=True)
class Column:
    """A column of a status table: its title, what it means, and whether it holds a number."""

    title: str
    tooltip: str
    numeric: bool = False


def _sync_rows(
    model: QAbstractItemModel,
    rows: list[_Row],
    new_rows: Sequence[_Row],
    key: Callable[[_Row], str],
) -> None:
    """Make ``rows`` equal ``new_rows`` through the model's fine-grained change signals.

    Removals come first (bottom up, one signal per run of rows), then a walk down the new
    order inserts runs of new keys, moves rows whose order changed (rare) and collects the rows
    whose content changed for one ``dataChanged`` per run.
    """
    root = QModelIndex()
    wanted = {key(row) for row in new_rows}
    last = len(rows) - 1
    while last >= 0:
        if key(rows[last]) in wanted:
            last -= 1
            continue
        first = last
        while first > 0 and key(rows[first - 1]) not in wanted:
            first -= 1
        model.beginRemoveRows(root, first, last)
        del rows[first : last + 1]
        model.endRemoveRows()
        last = first - 1

    present = {key(row) for row in rows}
    changed: list[int] = []
    position = 0
    while position < len(new_rows):
        row_key = key(new_rows[position])
        if row_key not in present:
            end = position + 1
            while end < len(new_rows) and key(new_rows[end]) not in present:
                end += 1
            model.beginInsertRows(root, position, end - 1)
            rows[position:position] = new_rows[position:end]
            model.endInsertRows()
            position = end
            continue
        if key(rows[position]) != row_key:
            source = next(i for i in range(position + 1, len(rows)) if key(rows[i]) == row_key)
            model.beginMoveRows(root, source, source, root, position)
            rows.insert(position, rows.pop(source))
            model.endMoveRows()
        if rows[position] != new_rows[position]:
            rows[position] = new_rows[position]
            changed.append(position)
        position += 1

    right = model.columnCount() - 1
    start = 0
    while start < len(changed):
        end = start
        while end + 1 < len(changed) and changed[end + 1] == changed[end] + 1:
            end += 1
        model.dataChanged.emit(model.index(changed[start], 0), model.index(changed[end], right))
        start = end + 1


class _StatusTableModel(QAbstractTableModel):
    """What both status tables share: a flat list of columns described by ``Column``."""

    COLUMNS: tuple[Column, ...] = ()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[Any] = []

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 (Qt's signature)
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = _DISPLAY) -> Any:
        if orientation is not Qt.Orientation.Horizontal or not 0 <= section < len(self.COLUMNS):
            return None
        column = self.COLUMNS[section]
        if role == _DISPLAY:
            return column.title
        if role == _TOOLTIP:
            return column.tooltip
        if role == _ALIGN:  # headers line up with their cells
            return _NUMBER_ALIGNMENT if column.numeric else _TEXT_ALIGNMENT
        return None

    def data(self, index: _Index, role: int = _DISPLAY) -> Any:
        if not self.checkIndex(index, QAbstractItemModel.CheckIndexOption.IndexIsValid):
            return None
        if role == _ALIGN:
            return _NUMBER_ALIGNMENT if self.COLUMNS[index.column()].numeric else None
        return self._cell(index.row(), index.column(), role)

    def _cell(self, row: int, column: int, role: int) -> Any:
        raise NotImplementedError


class ProvidersModel(_StatusTableModel):
    """One row per registered provider: breaker state, load, counts, latency, last error."""

    NAME, STATE, LOAD, SUCCESSES, FAILURES, FIRST_CHUNK, TOTAL, LAST_ERROR = range(8)
    COLUMNS = (
        Column("Provider", "The provider's name; hover for its id, plugin and description."),
        Column(
            "State",
            "The circuit breaker: closed (normal), open (skipped until its probe), half-open "
            "(the next request probes), needs attention (fix the settings, then Reset).",
        ),
        Column(
            "In flight",
            "Requests this provider is answering now / how many it may answer at once; "
            "requests waiting for one of its slots in parentheses.",
            numeric=True,
        ),
        Column("Answered", "Answers completed by this provider since start.", numeric=True),
        Column("Failed", "Failed attempts (errors, timeouts, refusals) since start.", numeric=True),
        Column(
            "First text", "Time to an answer's first text: median / 95th percentile.", numeric=True
        ),
        Column("Total", "Time for a whole answer: median / 95th percentile.", numeric=True),
        Column("Last error", "The provider's most recent error; hover for the full text."),
    )

    _rows: list[ProviderStatus]

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._bold = QFont()
        self._bold.setBold(True)

    def update(self, snapshot: EngineSnapshot) -> None:
        """Show ``snapshot``'s providers, signalling only what changed."""
        _sync_rows(self, self._rows, snapshot.providers, _provider_key)

    def provider_at(self, row: int) -> ProviderStatus | None:
        """The status shown in ``row``, or ``None`` if there is no such row."""
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def _cell(self, row: int, column: int, role: int) -> Any:
        status = self._rows[row]
        if role == _DISPLAY:
            return self._text(status, column)
        if role == _TOOLTIP:
            return self._tooltip(status, column)
        if column == self.STATE:
            if role == _BACKGROUND:
                return STATE_TINTS[status.state]
            if role == _DECORATION:
                return STATE_COLOURS[status.state]
            if role == _FONT and status.state is BreakerState.NEEDS_ATTENTION:
                return self._bold
        return None

    def _text(self, status: ProviderStatus, column: int) -> str:
        match column:
            case self.NAME:
                return status.display_name or status.id
            case self.STATE:
                return state_text(status)
            case self.LOAD:
                load = f"{status.in_flight} / {status.limit}"
                return f"{load} (+{status.waiting})" if status.waiting else load
            case self.SUCCESSES:
                return str(status.successes)
            case self.FAILURES:
                return str(status.failures)
            case self.FIRST_CHUNK:
                return _percentiles(status.first_chunk_p50, status.first_chunk_p95)
            case self.TOTAL:
                return _percentiles(status.total_p50, status.total_p95)
            case _:
                return " ".join(status.last_error.split()) or _DASH

    def _tooltip(self, status: ProviderStatus, column: int) -> str:
        match column:
            case self.NAME:
                lines = [f"{status.display_name} ({status.id}), from plugin {status.plugin}"]
                if status.description:
                    lines.append(status.description)
                return "\n".join(lines)
            case self.STATE:
                tip = _STATE_TOOLTIPS[status.state]
                if status.consecutive_failures:
                    tip += f"\nConsecutive failures: {status.consecutive_failures}."
                return tip
            case self.LOAD:
                return (
                    f"{status.in_flight} answering of at most {status.limit}; "
                    f"{status.waiting} waiting for a slot of this provider."
                )
            case self.FIRST_CHUNK:
                return _percentiles_tip(status.first_chunk_p50, status.first_chunk_p95)
            case self.TOTAL:
                return _percentiles_tip(status.total_p50, status.total_p95)
            case self.LAST_ERROR:
                return status.last_error or "No error so far."
            case _:
                return self.COLUMNS[column].tooltip


class RequestsModel(_StatusTableModel):
    """One row per request in flight: its tab, provider, phase, elapsed time and text so far."""

    TAB, MESSAGE, PROVIDER, PHASE, ELAPSED, CHARS = range(6)
    COLUMNS = (
        Column("Tab", "The chat tab the request belongs to."),
        Column("Message", "The message being answered; hover for all of it."),
        Column("Provider", "The provider trying to answer it now."),
        Column(
            "Phase",
            "Queued (behind earlier messages of its tab), waiting for a slot (the provider or "
            "the global limit is busy) or streaming; the provider's own progress note follows.",
        ),
        Column("Elapsed", "Time since the request started (or was queued).", numeric=True),
        Column("Characters", "Characters of the answer received so far.", numeric=True),
    )

    _rows: list[_RequestRow]

    def update(self, snapshot: EngineSnapshot, tab_titles: Mapping[str, str]) -> None:
        """Show ``snapshot``'s requests; ``tab_titles`` maps session ids to tab titles."""
        names = {status.id: status.display_name or status.id for status in snapshot.providers}
        rows = [
            _RequestRow(
                status,
                tab_titles.get(status.session_id, ""),
                names.get(status.provider_id, status.provider_id) if status.provider_id else "",
            )
            for status in snapshot.requests
        ]
        _sync_rows(self, self._rows, rows, _request_key)

    def _cell(self, row: int, column: int, role: int) -> Any:
        entry = self._rows[row]
        if role == _DISPLAY:
            return self._text(entry, column)
        if role == _TOOLTIP:
            return self._tooltip(entry, column)
        return None

    def _text(self, entry: _RequestRow, column: int) -> str:
        status = entry.status
        match column:
            case self.TAB:
                return entry.tab_title or f"chat {status.session_id[:8]}"
            case self.MESSAGE:
                return " ".join(status.prompt.split())
            case self.PROVIDER:
                return entry.provider_name or _DASH
            case self.PHASE:
                note = status.progress
                return f"{status.phase} · {note}" if note else str(status.phase)
            case self.ELAPSED:
                return format_whole_seconds(status.elapsed)
            case _:
                return str(status.chars)

    def _tooltip(self, entry: _RequestRow, column: int) -> str:
        status = entry.status
        match column:
            case self.MESSAGE:
                return status.prompt
            case self.PROVIDER:
                return status.provider_id or "No provider has taken it yet."
            case self.PHASE:
                return status.progress or _PHASE_TOOLTIPS[status.phase]
            case self.ELAPSED:
                if status.first_chunk_seconds is None:
                    return f"{format_duration(status.elapsed)}; no text yet."
                return (
                    f"{format_duration(status.elapsed)}; first text after "
                    f"{format_duration(status.first_chunk_seconds)}."
                )
            case _:
                return self.COLUMNS[column].tooltip


_PHASE_TOOLTIPS: Mapping[Phase, str] = {
    Phase.QUEUED: "Queued behind earlier messages of the same tab.",
    Phase.WAITING: "Waiting for a free slot of the provider or of the global limit.",
    Phase.STREAMING: "The provider is answering.",
    Phase.DONE: "Finished.",
}


@dataclass(frozen=True, slots=True)
class _RequestRow:
    status: RequestStatus
    tab_title: str
    provider_name: str


def _provider_key(status: ProviderStatus) -> str:
    return status.id


def _request_key(row: _RequestRow) -> str:
    return row.status.request_id


def _percentiles(p50: float | None, p95: float | None) -> str:
    if p50 is None:
        return _DASH
    return f"{format_duration(p50)} / {format_duration(p95)}"


def _percentiles_tip(p50: float | None, p95: float | None) -> str:
    if p50 is None:
        return "No answer yet."
    return f"Median {format_duration(p50)}, 95th percentile {format_duration(p95)}."
