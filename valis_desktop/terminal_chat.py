"""``valis-desktop chat``: the engine in a terminal, for quick questions and for scripts.

Each line read is a message; the answer streams to stdout and a one-line summary (provider,
time to first chunk, speed) goes to stderr. Ctrl+C stops a running answer; at the prompt it
quits, as do Ctrl+D and ``/quit``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import threading
from typing import TextIO

from valis_desktop.core.engine import Engine
from valis_desktop.core.request import Reply, Status


def _read_lines(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None]) -> None:
    # A daemon thread: a blocked read never keeps the process alive at exit.
    for line in sys.stdin:
        loop.call_soon_threadsafe(queue.put_nowait, line.rstrip("\n"))
    loop.call_soon_threadsafe(queue.put_nowait, None)


def describe(reply: Reply) -> str:
    """The summary line shown after an answer."""
    parts = [reply.status.value]
    if reply.provider_id:
        parts.append(f"by {reply.provider_id}")
    if reply.first_chunk_seconds is not None:
        parts.append(f"first chunk {reply.first_chunk_seconds:.2f} s")
    if reply.chars_per_second is not None:
        parts.append(f"{reply.chars_per_second:,.0f} chars/s")
    line = " · ".join(parts)
    if reply.error:
        line += f"\n{reply.error}"
    return f"[{line}]"


async def run_chat(
    engine: Engine,
    *,
    chain: tuple[str, ...],
    persona_id: str | None,
    messages: list[str],
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Chat on ``chain``. With ``messages``, send those and return; otherwise read stdin."""
    loop = asyncio.get_running_loop()
    session = engine.open_session(chain=chain, persona_id=persona_id)
    engine.on_plugin_quarantined = lambda record: print(
        f"[plugin {record.name} failed while answering ({record.error_summary}) and was set "
        "aside until the next start]",
        file=err,
    )
    interactive = not messages and sys.stdin.isatty()
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    if messages:
        for message in messages:
            lines.put_nowait(message)
        lines.put_nowait(None)
    else:
        threading.Thread(target=_read_lines, args=(loop, lines), daemon=True).start()

    quit_requested = asyncio.Event()

    def on_interrupt() -> None:
        if session.running is not None:
            session.stop()
        else:
            quit_requested.set()
            lines.put_nowait(None)

    # Not available off the main thread or on some platforms: Ctrl+C then simply quits.
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, on_interrupt)
    failed = False
    try:
        persona = session.persona
        if interactive:
            who = persona.name if persona else "Valis"
            print(f"{who} on {' → '.join(chain)}. Ctrl+C stops an answer; Ctrl+D quits.", file=err)
        while not quit_requested.is_set():
            if interactive:
                print("> ", end="", file=err, flush=True)
            line = await lines.get()
            if line is None or line.strip() in ("/quit", "/exit"):
                break
            if not line.strip():
                continue
            request = session.submit(line)
            async for chunk in request.stream():
                out.write(chunk)
                out.flush()
            reply = await request
            out.write("\n")
            out.flush()
            print(describe(reply), file=err)
            failed = failed or reply.status is Status.FAILED
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGINT)
        await engine.aclose()
    return 1 if failed else 0
