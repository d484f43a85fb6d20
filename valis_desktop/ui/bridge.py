"""The one path from a session's events to the widgets: coalesced once per frame.

The engine calls listeners synchronously, for every chunk. The bridge only records each event
(consecutive chunks of one request become one piece of text) and flushes the batch on a
single-shot timer, so a flood of chunks costs one widget update per frame.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, QTimer, Signal

from valis_desktop.core.request import EventKind, Request, SessionEvent
from valis_desktop.core.session import Session

FRAME_MS = 16


@dataclass(slots=True)
class UiEvent:
    kind: EventKind
    request: Request
    chunks: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.chunks)


class SessionBridge(QObject):
    """Batches one session's events; ``flushed`` carries them, in order, once per frame."""

    flushed = Signal(object)  # list[UiEvent]

    def __init__(self, session: Session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pending: list[UiEvent] = []
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(FRAME_MS)
        self._timer.timeout.connect(self.flush)
        self._unsubscribe: Callable[[], None] | None = session.subscribe(self._on_event)

    def _on_event(self, event: SessionEvent) -> None:
        pending = self._pending
        if event.kind is EventKind.CHUNK:
            last = pending[-1] if pending else None
            if last is not None and last.kind is EventKind.CHUNK and last.request is event.request:
                last.chunks.append(event.chunk)
                return
            pending.append(UiEvent(EventKind.CHUNK, event.request, [event.chunk]))
        else:
            pending.append(UiEvent(event.kind, event.request))
        if not self._timer.isActive():
            self._timer.start()

    @property
    def pending(self) -> bool:
        """Whether events wait for the next frame."""
        return bool(self._pending)

    def flush(self) -> None:
        """Deliver what is pending now (also used before a tab closes)."""
        self._timer.stop()
        if self._pending:
            batch, self._pending = self._pending, []
            self.flushed.emit(batch)

    def detach(self) -> None:
        """Stop listening to the session."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._timer.stop()
