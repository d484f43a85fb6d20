"""Render the main window mid-conversation to a PNG, with scripted demo providers.

    QT_QPA_PLATFORM=offscreen python -m valis_desktop.tools.screenshot docs/screenshot.png

Two tabs: one with a finished answer holding a highlighted code block, one still streaming;
the status panel shows a provider whose breaker has opened.
"""

from __future__ import annotations

import argparse
import asyncio

import qasync  # type: ignore[import-untyped]

from valis_desktop.api import ChatRequest, TransientError
from valis_desktop.app import create_application
from valis_desktop.builtin.fallback import FallbackProvider
from valis_desktop.builtin.personas import ASSISTANT
from valis_desktop.core.engine import Engine
from valis_desktop.core.plugins import PluginHost
from valis_desktop.core.provider_manager import ProviderManager
from valis_desktop.core.settings import EngineSettings, Settings
from valis_desktop.testing import Script, ScriptedProvider
from valis_desktop.ui.chat_tab import ChatTab
from valis_desktop.ui.main_window import MainWindow

SORTING_ANSWER = """Use `sorted()` with a `key`: it returns a new list, the original stays.

```python
people = [("Ada", 36), ("Grace", 85), ("Linus", 28)]
by_age = sorted(people, key=lambda person: person[1])
print(by_age)  # [('Linus', 28), ('Ada', 36), ('Grace', 85)]
```

- `reverse=True` sorts from the largest down.
- `list.sort()` sorts **in place** and returns `None`.
"""

STREAMING_CHUNKS = (
    "A circuit breaker stops a client from hammering a service that keeps failing. ",
    "After three failures in a row it *opens*: requests skip that provider ",
    "and go to the next one in the chain. After a cool-down it lets exactly one ",
    "probe through",
)


def _answer(request: ChatRequest) -> Script:
    if "sort" in request.prompt:
        words = SORTING_ANSWER.split(" ")
        return Script(chunks=(*(w + " " for w in words[:-1]), words[-1]), cooperative=True)
    if request.prompt.startswith(("Why", "Is it", "Tell")):
        return Script(chunks=("(warming up the demo)",))
    return Script(chunks=STREAMING_CHUNKS, hang_after=len(STREAMING_CHUNKS))


async def render(path: str, width: int, height: int) -> None:
    demo = ScriptedProvider(
        id="demo", display_name="Demo model", default_concurrency=4, default=_answer
    )
    flaky = ScriptedProvider(id="flaky", display_name="Flaky endpoint")
    flaky.default = lambda request: Script(error=TransientError("HTTP 503 Service Unavailable"))
    manager = ProviderManager()
    for provider, plugin in ((demo, "demo"), (flaky, "demo"), (FallbackProvider(), "fallback")):
        manager.add_provider(provider, plugin=plugin)
    settings = Settings(engine=EngineSettings(default_chain=["flaky", "demo", "fallback"]))
    engine = Engine(PluginHost(safe_mode=True), manager, {ASSISTANT.id: ASSISTANT}, settings)
    window = MainWindow(engine)
    window.resize(width, height)
    window.show()

    first = window.current_tab()
    assert first is not None
    for question in ("Why is the sky blue?", "Is it blue on Mars too?", "Tell me more"):
        first.session.submit(question)  # fails over from flaky three times: its breaker opens
    await _wait_idle(first)
    window.close_tab(first)
    sorting = window.current_tab()
    assert sorting is not None
    sorting.send("How do I sort a list of tuples by the second item in Python?")
    await _wait_idle(sorting)
    streaming = window.new_tab()
    streaming.send("What does a circuit breaker do in a chat client?")
    streaming.send("And what happens when the probe fails?")
    request = streaming.session.running
    while request is None or len(request.chunks) < len(STREAMING_CHUNKS):
        await asyncio.sleep(0.01)
        request = streaming.session.running
    await asyncio.sleep(0.1)  # two frames: the bridge and the status panel refresh
    window.tabs.setCurrentWidget(streaming)
    window.status_refresher.refresh()
    await asyncio.sleep(0.05)
    if not window.grab().save(path):
        raise SystemExit(f"could not write {path}")
    window.tabs.setCurrentWidget(sorting)
    await asyncio.sleep(0.05)
    second = path.replace(".png", "-code.png")
    window.grab().save(second)
    print(f"wrote {path} and {second}")
    await _shutdown(window)


async def _wait_idle(tab: ChatTab) -> None:
    while not tab.settled:  # noqa: ASYNC110 - polls the UI's state, which has no event
        await asyncio.sleep(0.01)


async def _shutdown(window: MainWindow) -> None:
    done = asyncio.Event()
    window.shutdown_finished.connect(done.set)
    window.close()
    await done.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="the PNG file to write")
    parser.add_argument("--size", default="1280x800", help="window size, WIDTHxHEIGHT")
    args = parser.parse_args(argv)
    width, height = (int(part) for part in args.size.split("x"))
    create_application()
    qasync.run(render(args.path, width, height))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
