"""The examples in the documentation run and print what the documentation says."""

from __future__ import annotations

import re
import sys
import types
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from valis_desktop.api import ENTRY_POINT_GROUP
from valis_desktop.core.engine import Engine
from valis_desktop.core.plugins import PluginHost

DOCS = Path(__file__).resolve().parents[2] / "docs"


def blocks(name: str, language: str) -> list[str]:
    text = (DOCS / name).read_text(encoding="utf-8")
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def test_the_engine_example_prints_what_the_docs_say(capsys: pytest.CaptureFixture[str]) -> None:
    [example] = blocks("engine.md", "python")
    expected = blocks("engine.md", "text")[0]
    exec(compile(example, "docs/engine.md", "exec"), {"__name__": "__docs__"})
    assert capsys.readouterr().out == expected


@pytest.fixture
def shout_module(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """The tutorial's plugin module, importable as ``valis_shout``."""
    plugin_source, _ = blocks("plugins.md", "python")
    module = types.ModuleType("valis_shout")
    exec(compile(plugin_source, "docs/plugins.md", "exec"), module.__dict__)
    monkeypatch.setitem(sys.modules, "valis_shout", module)
    return module


async def test_the_plugin_tutorial_loads_through_its_entry_point(
    shout_module: types.ModuleType,
) -> None:
    entry = EntryPoint(name="shout", value="valis_shout", group=ENTRY_POINT_GROUP)
    engine = Engine.start(host=PluginHost(entry_points=[entry], strict=True))
    session = engine.open_session(chain=["shout", "fallback"])
    reply = await session.submit("hello there")
    assert (reply.provider_id, reply.text) == ("shout", "HELLO THERE ")
    assert reply.usage is not None
    await engine.aclose()


async def test_the_plugin_tutorial_test_passes(shout_module: types.ModuleType) -> None:
    _, test_source = blocks("plugins.md", "python")
    namespace: dict[str, object] = {}
    exec(compile(test_source, "docs/plugins.md", "exec"), namespace)
    await namespace["test_shout_answers_in_capitals"]()  # type: ignore[operator]
