"""The examples in the documentation run and print what the documentation says."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import tomllib
import types
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from valis_desktop.api import ENTRY_POINT_GROUP
from valis_desktop.core.engine import Engine
from valis_desktop.core.personas import PersonaLibrary
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


# The plugin tutorial: a block that starts with a "# <path>" line is (a part of) that file of the
# tutorial's project; the other Python blocks are examples that run on their own.
FILE_HEADER = re.compile(r"# (?P<path>[\w./-]+)(?P<continued> \(continued\))?\n")


def tutorial_files() -> dict[str, str]:
    """The tutorial's project, file by file, from its blocks in order."""
    files: dict[str, str] = {}
    for language in ("python", "toml"):
        for block in blocks("plugins.md", language):
            header = FILE_HEADER.match(block)
            if header is None:
                continue
            path, body = header["path"], block[header.end() :]
            if header["continued"]:
                assert path in files, f"{path} is continued before it starts"
                files[path] += "\n\n" + body
            else:
                assert path not in files, f"{path} starts twice"
                files[path] = body
    return files


def write_tutorial_project(folder: Path) -> None:
    for path, text in {**tutorial_files(), "valis_shout/__init__.py": "", "README.md": ""}.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(text, encoding="utf-8")


def test_the_tutorial_has_every_file_of_its_folder() -> None:
    assert set(tutorial_files()) == {
        "pyproject.toml",
        "valis_shout/plugin.py",
        "tests/test_shout.py",
        "tests/test_settings.py",
    }
    pyproject = tomllib.loads(tutorial_files()["pyproject.toml"])
    assert pyproject["project"]["entry-points"][ENTRY_POINT_GROUP] == {
        "shout": "valis_shout.plugin"
    }
    assert pyproject["tool"]["pytest"]["ini_options"]["valis_plugins"] == ["shout"]


def test_the_tutorials_examples_run() -> None:
    examples = [b for b in blocks("plugins.md", "python") if not FILE_HEADER.match(b)]
    assert examples
    for example in examples:
        exec(compile(example, "docs/plugins.md", "exec"), {"__name__": "__docs__"})


@pytest.fixture
def shout_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    """The tutorial's plugin module, importable as ``valis_shout.plugin``."""
    write_tutorial_project(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield importlib.import_module("valis_shout.plugin")
    for name in ("valis_shout.plugin", "valis_shout"):
        sys.modules.pop(name, None)


async def test_the_plugin_tutorial_loads_through_its_entry_point(
    shout_plugin: types.ModuleType, tmp_path: Path
) -> None:
    entry = EntryPoint(name="shout", value="valis_shout.plugin", group=ENTRY_POINT_GROUP)
    library = PersonaLibrary(tmp_path / "personas")
    engine = Engine.start(host=PluginHost(entry_points=[entry], strict=True), library=library)
    session = engine.open_session(persona_id="shout:town-crier")
    assert session.chain == ("shout", "fallback")

    reply = await session.submit("hello there")

    assert (reply.provider_id, reply.text) == ("shout", "HELLO THERE!")
    assert reply.usage is not None
    assert [form.plugin for form in engine.host.settings_forms()] == ["shout"]
    await engine.aclose()


def test_the_settings_example_is_valid(shout_plugin: types.ModuleType) -> None:
    [example] = [b for b in blocks("plugins.md", "toml") if b.startswith("# settings.toml")]
    [instance] = tomllib.loads(example)["plugins"]["shout"]["instances"]
    assert shout_plugin.ShoutInstance.model_validate(instance).id == "polite"


@pytest.mark.slow
def test_the_plugin_tutorials_tests_pass(tmp_path: Path) -> None:
    """As its author runs them, but with the plugin named by its module: it is not installed."""
    write_tutorial_project(tmp_path)
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:pytest-qt"]
    command += ["-W", "error", "-o", "valis_plugins=shout=valis_shout.plugin"]
    environment = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run(
        command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=120
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^=+ 6 passed in ", done.stdout, flags=re.M), done.stdout
