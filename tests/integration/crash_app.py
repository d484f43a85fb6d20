"""A headless chat that records into a conversation store, to be killed mid-answer.

    python tests/integration/crash_app.py DATABASE

Opens two chats on a slow provider (a chunk every 50 ms), sends two messages in each (the
second waits in the queue), and once an answer is on disk part way prints
``streaming <first chat id> <second chat id>``; then streams on until it is killed.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

from valis_desktop.api import ChatRequest, Provider
from valis_desktop.core.provider_manager import ProviderManager
from valis_desktop.core.request import EventKind
from valis_desktop.core.session import Session
from valis_desktop.core.store import Recorder, Store

CHUNK_EVERY = 0.05
CHECKPOINT_INTERVAL = 0.2


class Slow(Provider):
    id = "slow"
    display_name = "Slow"

    async def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        for number in range(100_000):
            await asyncio.sleep(CHUNK_EVERY)
            yield f"{request.prompt}, part {number}. "


async def main(path: str) -> None:
    store = await Store.open(path)
    await store.recover()
    manager = ProviderManager()
    manager.add_provider(Slow(), plugin="crash-test")
    recorder = Recorder(store, interval=CHECKPOINT_INTERVAL)
    chats = [Session(manager, chain=["slow"]) for _ in range(2)]
    for position, chat in enumerate(chats):
        recorder.follow(chat, tab_position=position)
        store.update_conversation(chat.id, title=f"Chat {position + 1}")
    first_chunk: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    chats[0].subscribe(
        lambda event: (
            first_chunk.set_result(None)
            if event.kind is EventKind.CHUNK and not first_chunk.done()
            else None
        )
    )
    for position, chat in enumerate(chats):
        await recorder.submit(chat, f"question {position + 1}")
        await recorder.submit(chat, f"typed ahead {position + 1}")
    await first_chunk
    # The checkpoint timer armed by that chunk fires within the interval; then its write is
    # queued, and flush() returns once it is committed.
    await asyncio.sleep(2 * CHECKPOINT_INTERVAL)
    await store.flush()
    messages = await store.messages(chats[0].id)
    if not messages[1].text:
        raise SystemExit("no checkpoint was written while streaming")
    print("streaming", *(chat.id for chat in chats), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
