"""The live status panel: providers, their breakers and load, global slots, requests in flight.

``StatusPanel`` only displays snapshots; ``StatusRefresher`` feeds it from the provider manager
at most once per frame, however many events the engine raises.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from PySide6.QtCore import QObject, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDockWidget,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProxyStyle,
    QPushButton,
    QSplitter,
    QStyle,
    QStyleOption,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from valis_desktop.core.circuit_breaker import BreakerState
from valis_desktop.core.provider_manager import EngineEvent, EngineListener, EngineSnapshot
from valis_desktop.ui.status_models import ProvidersModel, RequestsModel, can_reset

# Typical content that sets a column's first width; longer text is elided and its tooltip shows
# all of it. Provider names are measured; the last error and the message take the room left.
_PROVIDER_SAMPLES = {
    ProvidersModel.STATE: "open · probe in 17 s",
    ProvidersModel.LOAD: "10 / 10 (+9)",
    ProvidersModel.SUCCESSES: "",
    ProvidersModel.FAILURES: "",
    ProvidersModel.FIRST_CHUNK: "830 ms / 830 ms",
    ProvidersModel.TOTAL: "7.9 s / 19 s",
}
_REQUEST_SAMPLES = {
    RequestsModel.TAB: "A chat tab title here",
    RequestsModel.PHASE: "waiting for a slot",
    RequestsModel.ELAPSED: "9 min 59 s",
    RequestsModel.CHARS: "",
}
_MAX_NAME_CHARS = 26
_CELL_MARGIN = 5
_SWATCH = 10
_CELL_PADDING = 2 * _CELL_MARGIN + 8


class _RoomyCellStyle(QProxyStyle):
    """The application's style with wider text margins in cells, so a right-aligned number
    never touches the text of the next column. (A style sheet could pad the cells too, but it
    pins the view's palette and breaks switching between light and dark.)"""

    def __init__(self, view: QWidget) -> None:
        super().__init__()
        self.setParent(view)

    def pixelMetric(
        self,
        metric: QStyle.PixelMetric,
        option: QStyleOption | None = None,
        widget: QWidget | None = None,
    ) -> int:
        if metric is QStyle.PixelMetric.PM_FocusFrameHMargin:
            return max(super().pixelMetric(metric, option, widget), _CELL_MARGIN)
        return super().pixelMetric(metric, option, widget)


class StatusPanel(QDockWidget):
    """A dock showing the engine's providers and requests live.

    It never talks to the engine: ``update_snapshot`` feeds it, and ``reset_requested`` carries
    the id of a provider the user wants reset (the caller wires it to ``manager.reset``).
    """

    reset_requested = Signal(str)
    """The user asked to reset the breaker of the provider with this id."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Status", parent)
        self.setObjectName("statusPanel")
        self.providers_model = ProvidersModel(self)
        self.requests_model = RequestsModel(self)

        self.slots_label = QLabel("Slots: 0 / 0")
        self.slots_label.setAccessibleName("Global slots in use")
        self.slots_label.setToolTip(
            "Provider calls running now / the most that may run at once across all providers."
        )
        self.reset_button = QPushButton("&Reset provider")
        self.reset_button.setAccessibleName("Reset provider")
        self.reset_button.setToolTip(
            "Close the selected provider's breaker so chats use it again "
            "(for a provider that is open or needs attention)."
        )
        self.reset_button.clicked.connect(self._request_reset)
        self.reset_action = QAction("&Reset provider", self)
        self.reset_action.triggered.connect(self._request_reset)

        self.providers_view = self._make_view(self.providers_model, "Providers", _PROVIDER_SAMPLES)
        self.providers_view.setAccessibleDescription(
            "Each provider's breaker state, load, answers, failures, latency and last error."
        )
        self.providers_view.setIconSize(QSize(_SWATCH, _SWATCH))  # the state's colour swatch
        state_width = self.providers_view.columnWidth(ProvidersModel.STATE)
        self.providers_view.setColumnWidth(ProvidersModel.STATE, state_width + _SWATCH + 6)
        self.providers_view.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        self.providers_view.addAction(self.reset_action)
        self.requests_label = QLabel()
        self.requests_view = self._make_view(
            self.requests_model, "Requests in flight", _REQUEST_SAMPLES
        )
        requests_header = self.requests_view.horizontalHeader()
        requests_header.setStretchLastSection(False)
        requests_header.setSectionResizeMode(RequestsModel.MESSAGE, QHeaderView.ResizeMode.Stretch)
        self.requests_label.setBuddy(self.requests_view)

        top = QHBoxLayout()
        top.addWidget(self.slots_label)
        top.addStretch(1)
        top.addWidget(self.reset_button)
        requests_box = QWidget()
        requests_layout = QVBoxLayout(requests_box)
        requests_layout.setContentsMargins(0, 0, 0, 0)
        requests_layout.addWidget(self.requests_label)
        requests_layout.addWidget(self.requests_view)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.setChildrenCollapsible(False)
        splitter.addWidget(self.providers_view)
        splitter.addWidget(requests_box)
        contents = QWidget()
        layout = QVBoxLayout(contents)
        layout.addLayout(top)
        layout.addWidget(splitter, 1)
        self.setWidget(contents)
        # The button acts on the providers table: reach it right after the table.
        QWidget.setTabOrder(self.providers_view, self.reset_button)
        QWidget.setTabOrder(self.reset_button, self.requests_view)

        selection = self.providers_view.selectionModel()
        selection.currentRowChanged.connect(self._update_reset)
        for signal in (
            self.providers_model.dataChanged,
            self.providers_model.rowsInserted,
            self.providers_model.rowsRemoved,
        ):
            signal.connect(self._update_reset)
        self.providers_model.rowsInserted.connect(self._fit_provider_names)
        self._set_requests_label(0)
        self._update_reset()

    def update_snapshot(self, snapshot: EngineSnapshot, tab_titles: Mapping[str, str]) -> None:
        """Show ``snapshot``; ``tab_titles`` maps session ids to the titles of their tabs."""
        self.providers_model.update(snapshot)
        self.requests_model.update(snapshot, tab_titles)
        self.slots_label.setText(f"Slots: {snapshot.global_in_use} / {snapshot.global_limit}")
        self._set_requests_label(len(snapshot.requests))

    def selected_provider_id(self) -> str | None:
        """The id of the provider whose row is current, if any."""
        status = self.providers_model.provider_at(self.providers_view.currentIndex().row())
        return status.id if status is not None else None

    def _make_view(
        self, model: ProvidersModel | RequestsModel, name: str, samples: Mapping[int, str]
    ) -> QTableView:
        view = QTableView()
        view.setModel(model)
        view.setAccessibleName(name)
        view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        view.setTabKeyNavigation(False)  # Tab leaves the table, arrows move inside it
        view.setWordWrap(False)
        view.setAlternatingRowColors(True)
        view.setShowGrid(False)
        view.setCornerButtonEnabled(False)
        view.setStyle(_RoomyCellStyle(view))
        metrics = view.fontMetrics()
        rows = view.verticalHeader()
        rows.hide()
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        rows.setDefaultSectionSize(metrics.height() + 8)
        header = view.horizontalHeader()
        header.setHighlightSections(False)
        header.setStretchLastSection(True)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        for column, sample in samples.items():
            title = str(model.headerData(column, Qt.Orientation.Horizontal))
            width = max(metrics.horizontalAdvance(sample), metrics.horizontalAdvance(title))
            view.setColumnWidth(column, width + _CELL_PADDING)
        return view

    def _fit_provider_names(self) -> None:
        # Providers appear rarely (at start, after a plugin install), so the name column may
        # follow its content without jittering.
        view = self.providers_view
        metrics = view.fontMetrics()
        model = self.providers_model
        names = (str(model.data(model.index(row, model.NAME))) for row in range(model.rowCount()))
        widest = max((metrics.horizontalAdvance(name) for name in names), default=0)
        width = min(widest, metrics.averageCharWidth() * _MAX_NAME_CHARS) + _CELL_PADDING
        view.setColumnWidth(ProvidersModel.NAME, width)
        self.requests_view.setColumnWidth(RequestsModel.PROVIDER, width)

    def _set_requests_label(self, count: int) -> None:
        self.requests_label.setText(
            f"Requests in flight: {count}" if count else "No requests in flight"
        )

    def _update_reset(self) -> None:
        status = self.providers_model.provider_at(self.providers_view.currentIndex().row())
        enabled = status is not None and can_reset(status)
        self.reset_button.setEnabled(enabled)
        self.reset_action.setEnabled(enabled)
        label = f"&Reset {status.display_name or status.id}" if status and enabled else None
        self.reset_action.setText(label or "&Reset provider")

    def _request_reset(self) -> None:
        status = self.providers_model.provider_at(self.providers_view.currentIndex().row())
        if status is not None and can_reset(status):
            self.reset_requested.emit(status.id)


class EngineSource(Protocol):
    """What the refresher needs of the provider manager."""

    def subscribe(self, listener: EngineListener) -> Callable[[], None]: ...

    def snapshot(self) -> EngineSnapshot: ...


class _Subscription:
    """Unsubscribes once, however many times it is asked (by ``stop`` or by Qt on deletion)."""

    def __init__(self, unsubscribe: Callable[[], None]) -> None:
        self._unsubscribe: Callable[[], None] | None = unsubscribe

    def cancel(self) -> None:
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()


class StatusRefresher(QObject):
    """Feeds a ``StatusPanel`` from the engine at most once per ``delay_ms``.

    An engine event only marks the panel dirty and starts a single-shot timer; when it fires,
    one snapshot is taken and shown, however many events came in between. While a breaker
    counts down to its probe or requests are in flight (their elapsed time and characters grow
    without events), a repeating ``tick_ms`` timer refreshes as well; it stops when nothing
    needs it. The refresher is a child of the panel and unsubscribes when either is deleted.
    """

    def __init__(
        self,
        manager: EngineSource,
        tab_titles: Callable[[], Mapping[str, str]],
        panel: StatusPanel,
        *,
        delay_ms: int = 50,
        tick_ms: int = 1000,
    ) -> None:
        super().__init__(panel)
        self._manager = manager
        self._tab_titles = tab_titles
        self._panel = panel
        self._dirty = False
        self._coalesce = QTimer(self)
        self._coalesce.setSingleShot(True)
        self._coalesce.setInterval(delay_ms)
        self._coalesce.timeout.connect(self.refresh)
        self._tick = QTimer(self)
        self._tick.setInterval(tick_ms)
        self._tick.timeout.connect(self.refresh)
        self._subscription = _Subscription(manager.subscribe(self._on_event))
        self.destroyed.connect(self._subscription.cancel)
        self.refresh()

    @property
    def ticking(self) -> bool:
        """Whether the repeating timer runs (something on screen changes with time)."""
        return self._tick.isActive()

    @property
    def pending(self) -> bool:
        """Whether a refresh is scheduled for engine events not shown yet."""
        return self._dirty

    def refresh(self) -> None:
        """Show one fresh snapshot now and decide whether the clock needs to keep ticking."""
        self._dirty = False
        self._coalesce.stop()
        snapshot = self._manager.snapshot()
        self._panel.update_snapshot(snapshot, self._tab_titles())
        if snapshot.requests or any(
            status.state is BreakerState.OPEN for status in snapshot.providers
        ):
            self._tick.start()  # restarted: the next tick comes a full interval after this
        else:
            self._tick.stop()

    def stop(self) -> None:
        """Unsubscribe from the engine and stop both timers; the panel keeps what it shows."""
        self._subscription.cancel()
        self._dirty = False
        self._coalesce.stop()
        self._tick.stop()

    close = stop

    def _on_event(self, _event: EngineEvent) -> None:
        # Runs inside the engine's hot path, hundreds of times a second: a flag and, once per
        # refresh, a timer start. Nothing here can raise.
        if not self._dirty:
            self._dirty = True
            self._coalesce.start()
