"""The window's link to the conversation store: every chat is recorded, and comes back.

The store does the work on its own thread; this keeps the tabs and the store in step (titles,
personas, chains, tab order, closed tabs).
"""

from __future__ import annotations

from collections.abc import Sequence

from valis_desktop.core.store import Conversation, Recorder, Store, StoredMessage
from valis_desktop.ui.chat_tab import ChatTab


class Conversations:
    """Records the window's chats in ``store`` and restores them."""

    def __init__(self, store: Store, recorder: Recorder) -> None:
        self.store = store
        self.recorder = recorder

    async def saved_tabs(self) -> list[tuple[Conversation, list[StoredMessage]]]:
        """The tabs that were open, in order, with their messages."""
        return [(tab, await self.store.messages(tab.id)) for tab in await self.store.open_tabs()]

    async def load(self, conversation_id: str) -> tuple[Conversation, list[StoredMessage]] | None:
        conversation = await self.store.conversation(conversation_id)
        if conversation is None:
            return None
        return conversation, await self.store.messages(conversation_id)

    def follow(self, tab: ChatTab, position: int) -> None:
        """Record ``tab``'s conversation from now on, and what the user changes about it."""
        conversation_id = tab.session.id
        self.recorder.follow(tab.session, tab_position=position)
        update = self.store.update_conversation
        tab.title_changed.connect(lambda title: update(conversation_id, title=title))
        tab.chain_changed.connect(lambda chain: update(conversation_id, chain=list(chain)))
        tab.persona_changed.connect(lambda persona: update(conversation_id, persona_id=persona))

    def tab_order(self, conversation_ids: Sequence[str]) -> None:
        self.store.set_tab_order(conversation_ids)

    def closed(self, conversation_id: str) -> None:
        """The tab was closed: the conversation stays in the history."""
        self.store.close_conversation(conversation_id)

    async def stop_recording(self) -> None:
        """First step of quitting: answers in progress stay unfinished on disk (interrupted at
        the next start), queued messages stay unsent."""
        await self.recorder.aclose()

    async def aclose(self) -> None:
        await self.store.aclose()
