"""One chat tab: its session, transcript, queue, composer, persona and provider chain."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from valis_desktop.api import Persona, Role
from valis_desktop.core.engine import Engine
from valis_desktop.core.request import EventKind, Phase, Reply, Request, Status
from valis_desktop.core.session import QueueFull, Session, SessionClosed
from valis_desktop.core.store import Recorder, StoredMessage, StoreError
from valis_desktop.ui.bridge import SessionBridge, UiEvent
from valis_desktop.ui.chain_editor import ChainEditor
from valis_desktop.ui.chat_view import ChatView
from valis_desktop.ui.composer import Composer
from valis_desktop.ui.message_html import HistoryItem
from valis_desktop.ui.queue_strip import QueueStrip, preview

NEW_CHAT_TITLE = "New chat"
_TITLE_LENGTH = 32


def persona_icon(persona: Persona | None) -> QIcon:
    """A round swatch of the persona's colour, or no icon for a persona without one."""
    return _swatch(persona.colour) if persona is not None and persona.colour else QIcon()


@functools.cache
def _swatch(colour: str, size: int = 12) -> QIcon:
    """Painted once per colour: a tab's title is shown again at every answer."""
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(colour))
    painter.drawEllipse(1, 1, size - 2, size - 2)
    painter.end()
    return QIcon(pixmap)


class ChatTab(QWidget):
    title_changed = Signal(str)
    busy_changed = Signal(bool)
    chain_changed = Signal(object)  # tuple[str, ...]
    persona_changed = Signal(str)

    def __init__(
        self,
        engine: Engine,
        session: Session,
        parent: QWidget | None = None,
        *,
        recorder: Recorder | None = None,
        title: str = "",
    ) -> None:
        """With a ``recorder``, every message is on disk before it is sent."""
        super().__init__(parent)
        self.engine = engine
        self.session = session
        self.recorder = recorder
        self.title = title or NEW_CHAT_TITLE
        self._renamed = bool(title)
        self._busy = False
        self._requests: dict[str, Request] = {}
        """This tab's requests by id, oldest first."""
        self._answers: dict[str, Request] = {}
        """Requests by the id of their answer in the view, for retry."""
        self._restored: dict[str, tuple[str, str | None]] = {}
        """Restored answers by id: (the question, the provider that answered), for retry."""
        self._sending: set[asyncio.Task[Request]] = set()
        self._resent: set[str] = set()
        """Stored messages sent again from this tab (a second click does nothing)."""

        self.persona_picker = QComboBox(self)
        self.persona_picker.setAccessibleName("Persona")
        self.persona_picker.setToolTip("The voice this chat speaks in, from the next message on")
        self.refresh_personas()
        self.persona_picker.currentIndexChanged.connect(self._persona_chosen)
        persona_label = QLabel("&Persona", self)
        persona_label.setBuddy(self.persona_picker)

        self.chain_button = QPushButton(self)
        self.chain_button.setAccessibleName("Provider chain")
        self.chain_button.setToolTip("The providers this chat tries, in order (click to change)")
        self.chain_button.clicked.connect(self.edit_chain)
        self._show_chain()

        self.view = ChatView(self)
        self.view.retry_requested.connect(self.retry)
        self.view.resend_requested.connect(self.resend)
        self.view.retry_next_requested.connect(self.retry_with_next)
        self.queue = QueueStrip(self)
        self.queue.cancel_requested.connect(self.cancel_queued)
        self.notice = QLabel(self)
        self.notice.setAccessibleName("Chat status")
        self.notice.setWordWrap(True)
        self.notice.setTextFormat(Qt.TextFormat.PlainText)
        self.notice.hide()

        self.composer = Composer(self)
        self.composer.send_requested.connect(self.send)
        self.composer.stop_requested.connect(self.stop)
        self.composer.textChanged.connect(self._composing)
        self._warmed = False
        self.send_button = QPushButton("Send", self)
        self.send_button.setAccessibleName("Send message")
        self.send_button.setToolTip("Send (Enter)")
        self.send_button.clicked.connect(self.composer.submit)
        self.stop_button = QPushButton("Stop", self)
        self.stop_button.setAccessibleName("Stop the answer")
        self.stop_button.setToolTip("Stop the answer being written (Esc)")
        self.stop_button.clicked.connect(self.stop)
        self.stop_button.setEnabled(False)

        header = QHBoxLayout()
        header.addWidget(persona_label)
        header.addWidget(self.persona_picker)
        header.addSpacing(12)
        header.addWidget(self.chain_button)
        header.addStretch(1)
        buttons = QVBoxLayout()
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.stop_button)
        buttons.addStretch(1)
        compose = QHBoxLayout()
        compose.addWidget(self.composer, 1)
        compose.addLayout(buttons)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addLayout(header)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.queue)
        layout.addWidget(self.notice)
        layout.addLayout(compose)
        self.setFocusProxy(self.composer)

        self._bridge = SessionBridge(session, self)
        self._bridge.flushed.connect(self._apply)

    # Actions

    def send(self, text: str) -> bool:
        """Queue ``text``; on success the composer is cleared, otherwise the user is told why
        and keeps the text."""
        if self._submit(text):
            self.composer.clear()
            return True
        return False

    def _submit(self, text: str, chain: Sequence[str] | None = None) -> bool:
        session = self.session
        try:
            if self.recorder is None:
                session.submit(text, chain=chain)
            else:
                # Written to disk before it is queued: refuse now what the queue would refuse,
                # so that the user keeps the text in the composer.
                session.check(text)
        except (QueueFull, SessionClosed, ValueError) as error:
            self._say(str(error))
            return False
        self._say("")
        if self.recorder is None:
            return True
        task = asyncio.ensure_future(self.recorder.submit(session, text, chain=chain))
        self._sending.add(task)
        task.add_done_callback(lambda done: self._sent(done, text))
        return True

    def _sent(self, task: asyncio.Task[Request], text: str) -> None:
        self._sending.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if isinstance(error, QueueFull | SessionClosed | ValueError | StoreError):
            self._say(f"Not sent: {error}")
            if not self.composer.toPlainText():
                self.composer.setPlainText(text)
        elif error is not None:
            self._say(f"Not sent: the message could not be saved ({error}).")
            if not self.composer.toPlainText():
                self.composer.setPlainText(text)

    def _composing(self) -> None:
        """The user started a message: the provider it will go to may start loading now."""
        empty = self.composer.document().isEmpty()
        if not empty and not self._warmed:
            self.engine.warm_up(self.session.chain)
        self._warmed = not empty

    def stop(self) -> None:
        self.session.stop()

    def cancel_queued(self, request_id: str) -> None:
        request = self._requests.get(request_id)
        if request is not None:
            request.cancel()

    def retry(self, answer_id: str) -> None:
        asked = self._asked(answer_id)
        if asked is not None:
            self._submit(asked[0])

    def resend(self, message_id: str) -> None:
        """Send a stored message that was never sent (the app closed first, or it was
        cancelled): it joins the queue as the newest message."""
        if self.recorder is None or message_id in self._resent:
            return
        self._resent.add(message_id)
        task = asyncio.ensure_future(self.recorder.resend(self.session, message_id))
        self._sending.add(task)
        task.add_done_callback(lambda done: self._resend_ended(done, message_id))

    def _resend_ended(self, task: asyncio.Task[Request], message_id: str) -> None:
        self._sending.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            self._resent.discard(message_id)
            self._say(f"Not sent: {error}")
        else:
            self.view.mark_resent(message_id)

    def retry_with_next(self, answer_id: str) -> None:
        asked = self._asked(answer_id)
        if asked is None:
            return
        prompt, rest = asked
        if not rest:
            self._say("There is no next provider in this chat's chain.")
            return
        self._submit(prompt, chain=rest)

    def restore_history(self, messages: Sequence[StoredMessage]) -> None:
        """Show a stored conversation (its Retry links work as for live answers)."""
        question = ""
        items = []
        for message in messages:
            if message.role == Role.USER:
                question = message.text
                items.append(HistoryItem(message.id, "user", message.text, message.status))
            elif message.role == Role.ASSISTANT:
                self._restored[message.id] = (question, message.provider_id)
                items.append(
                    HistoryItem(
                        message.id,
                        "assistant",
                        message.text,
                        message.status,
                        self._provider_name(message.provider_id),
                        message.first_chunk_seconds,
                        message.chars_per_second,
                        message.error,
                        bool(self._chain_after_provider(self.session.chain, message.provider_id)),
                    )
                )
        self.view.load_history(items)

    def _asked(self, answer_id: str) -> tuple[str, tuple[str, ...]] | None:
        """The question an answer answered, and the providers after the one that answered."""
        request = self._answers.get(answer_id)
        if request is not None:
            return request.prompt, self._chain_after(request)
        restored = self._restored.get(answer_id)
        if restored is not None:
            prompt, provider_id = restored
            return prompt, self._chain_after_provider(self.session.chain, provider_id)
        return None

    def edit_chain(self) -> None:
        available = [
            (status.id, status.display_name) for status in self.engine.manager.snapshot().providers
        ]
        editor = ChainEditor(self.session.chain, available, self)
        editor.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        editor.accepted.connect(lambda: self.set_chain(editor.chain()))
        editor.open()

    def set_chain(self, chain: list[str]) -> None:
        if not chain:
            self._say("A chat needs at least one provider; the chain was not changed.")
            return
        if tuple(chain) != self.session.chain:
            self.session.chain = tuple(chain)
            self._show_chain()
            self.view.add_notice(f"Provider chain: {' → '.join(chain)}")
            self.chain_changed.emit(self.session.chain)

    def rename(self, title: str) -> None:
        title = " ".join(title.split())
        if title:
            self._renamed = True
            self._set_title(title)

    async def aclose(self) -> None:
        """Cancel this tab's requests and close its session."""
        if self._sending:
            await asyncio.wait(set(self._sending))
        self._bridge.detach()
        await self.engine.close_session(self.session)

    @property
    def busy(self) -> bool:
        """Whether the session is answering or has messages waiting."""
        return self.session.busy

    @property
    def settled(self) -> bool:
        """Idle, and everything that happened is on screen."""
        return not self._sending and not self.session.busy and not self._bridge.pending

    # Engine events, once per frame

    def _apply(self, batch: list[UiEvent]) -> None:
        for event in batch:
            request = event.request
            match event.kind:
                case EventKind.QUEUED:
                    self.queue.add(request.id, request.prompt)
                    self._requests[request.id] = request
                case EventKind.STARTED:
                    self.queue.remove(request.id)
                    if not self._renamed and self.title == NEW_CHAT_TITLE:
                        self._set_title(preview(request.prompt, _TITLE_LENGTH))
                    question, answer = self._view_ids(request)
                    self._answers[answer] = request
                    self.view.add_user_message(question, request.prompt)
                    self.view.begin_answer(answer)
                case EventKind.PHASE:
                    self.view.set_answer_note(self._view_ids(request)[1], self._note(request))
                case EventKind.CHUNK:
                    self.view.append_text(self._view_ids(request)[1], event.text)
                case EventKind.FINISHED:
                    self._finished(request)
        self._update_busy()

    def _view_ids(self, request: Request) -> tuple[str, str]:
        """The ids the view knows a request's question and answer by: the stored ids when the
        conversation is recorded (so search results can point at them), else the request's."""
        stored = self.recorder.ids(request) if self.recorder is not None else None
        if stored is not None and stored[1] is not None:
            return stored[0], stored[1]
        return f"{request.id}/question", request.id

    def _finished(self, request: Request) -> None:
        self.queue.remove(request.id)
        reply = request.result()
        if reply.status is Status.CANCELLED:
            return
        self.view.finish_answer(
            self._view_ids(request)[1],
            status=reply.status.value,
            text=reply.text,
            provider=self._provider_name(reply.provider_id),
            first_chunk_seconds=reply.first_chunk_seconds,
            chars_per_second=reply.chars_per_second,
            error=reply.error,
            can_retry_next=bool(self._chain_after(request)),
            passed_over=self._passed_over(reply) if reply.status is Status.ANSWERED else "",
            left_out=request.left_out if reply.text else 0,
        )

    def _passed_over(self, reply: Reply) -> str:
        """Why the providers tried before the one that answered did not, in a line."""
        said = []
        for attempt in reply.attempts:
            if attempt.provider_id == reply.provider_id:
                break
            name = self._provider_name(attempt.provider_id)
            if attempt.outcome == "skipped":
                said.append(f"{name} skipped ({attempt.message})")
            else:
                outcome = "failed" if attempt.outcome == "failure" else attempt.outcome
                said.append(
                    f"{name} {outcome}" + (f": {attempt.message}" if attempt.message else "")
                )
        return "; ".join(said)

    def _note(self, request: Request) -> str:
        name = self._provider_name(request.provider_id) or "a provider"
        if request.phase is Phase.WAITING:
            return f"waiting for a free slot on {name}…"
        if request.phase is Phase.STREAMING and not request.chunks:
            return request.progress or f"asking {name}…"
        return ""

    def _provider_name(self, provider_id: str | None) -> str | None:
        if provider_id is None:
            return None
        if provider_id in self.engine.manager.provider_ids:
            return self.engine.manager.provider(provider_id).display_name
        return provider_id

    def _chain_after(self, request: Request) -> tuple[str, ...]:
        tried = [attempt.provider_id for attempt in request.attempts]
        last = request.provider_id or (tried[-1] if tried else None)
        return self._chain_after_provider(request.chain or self.session.chain, last)

    @staticmethod
    def _chain_after_provider(chain: tuple[str, ...], provider_id: str | None) -> tuple[str, ...]:
        if provider_id not in chain:
            return chain
        return chain[chain.index(provider_id) + 1 :]

    def _update_busy(self) -> None:
        busy = self.session.busy
        self.stop_button.setEnabled(self.session.running is not None)
        if busy != self._busy:
            self._busy = busy
            self.busy_changed.emit(busy)

    def refresh_personas(self) -> None:
        """Refill the persona picker from the engine's personas (after the user saved or
        deleted one), keeping the current choice and without announcing a persona change. A
        persona that is gone from the library stays listed while this chat still speaks in it."""
        current = self.persona_picker.currentData()
        blocker = QSignalBlocker(self.persona_picker)
        try:
            self.persona_picker.clear()
            for persona in self.engine.personas.values():
                self.persona_picker.addItem(persona_icon(persona), persona.name, persona.id)
            index = self.persona_picker.findData(current)
            speaking = self.session.persona
            if index < 0 and speaking is not None:
                index = self.persona_picker.findData(speaking.id)
                if index < 0:
                    self.persona_picker.addItem(persona_icon(speaking), speaking.name, speaking.id)
                    index = self.persona_picker.count() - 1
            self.persona_picker.setCurrentIndex(max(index, 0))
        finally:
            blocker.unblock()

    def _persona_chosen(self, index: int) -> None:
        persona = self.engine.personas.get(self.persona_picker.itemData(index))
        if persona is not None and persona != self.session.persona:
            self.session.persona = persona
            self.view.add_notice(f"Persona: {persona.name} — from the next message on")
            self.persona_changed.emit(persona.id)

    def _show_chain(self) -> None:
        self.chain_button.setText("Chain: " + " → ".join(self.session.chain))

    def _set_title(self, title: str) -> None:
        self.title = title
        self.title_changed.emit(title)

    def _say(self, message: str) -> None:
        self.notice.setText(message)
        self.notice.setVisible(bool(message))
