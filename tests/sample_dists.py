"""Sample plugin distributions, as pip installs them (a ``.dist-info`` folder beside a module)
or as a wheel for pip to install, without a build backend."""

from __future__ import annotations

import base64
import hashlib
import shutil
import zipfile
from pathlib import Path

from valis_desktop.api import ENTRY_POINT_GROUP

PLUGIN_SOURCE = '''\
"""{summary}"""

from collections.abc import AsyncIterator

from valis_desktop.api import ChatRequest, Persona, Provider, StreamItem, hookimpl


class _Provider(Provider):
    id = {name!r}
    display_name = "Sample {version}"

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamItem]:
        yield "{version} says: "
        yield request.prompt


@hookimpl
def register_providers(register):
    register(_Provider())


@hookimpl
def register_personas(register):
    register(Persona(id="pirate", name="Pirate {version}", system_prompt="Arr."))
'''
"""A plugin whose provider, named as its distribution, answers "<version> says: <prompt>", and
which ships the persona ``pirate``."""


def plugin_files(
    name: str,
    version: str = "1.0",
    *,
    source: str | None = None,
    summary: str = "A sample plugin.",
    homepage: str = "https://example.org/sample",
) -> dict[str, str]:
    """The files of distribution ``name`` holding the plugin ``name`` (``PLUGIN_SOURCE``, or
    ``source``) in a module of the same name, by path inside site-packages."""
    module = name.replace("-", "_")
    info = f"{module}-{version}.dist-info"
    return {
        f"{module}.py": source or PLUGIN_SOURCE.format(summary=summary, name=name, version=version),
        f"{info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: {summary}\n"
            f"Project-URL: Homepage, {homepage}\n"
        ),
        f"{info}/entry_points.txt": f"[{ENTRY_POINT_GROUP}]\n{name} = {module}\n",
    }


class Site:
    """A directory (put it on ``sys.path``) holding distributions the way pip installs them."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def install(self, name: str, version: str = "1.0", **details: str) -> None:
        """Install ``plugin_files(name, version, **details)``, replacing any other version."""
        self.uninstall(name)
        for path, text in plugin_files(name, version, **details).items():
            (self.root / path).parent.mkdir(parents=True, exist_ok=True)
            (self.root / path).write_text(text, encoding="utf-8")

    def uninstall(self, name: str) -> None:
        module = name.replace("-", "_")
        for info in self.root.glob(f"{module}-*.dist-info"):
            shutil.rmtree(info)
        (self.root / f"{module}.py").unlink(missing_ok=True)


def build_plugin_wheel(folder: Path, name: str, version: str = "1.0", **details: str) -> Path:
    """A wheel of ``plugin_files(name, version, **details)`` in ``folder``."""
    module = name.replace("-", "_")
    info = f"{module}-{version}.dist-info"
    files = plugin_files(name, version, **details)
    files[f"{info}/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = "".join(
        f"{path},{_digest(text.encode())},{len(text.encode())}\n" for path, text in files.items()
    )
    wheel = folder / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
        archive.writestr(f"{info}/RECORD", record + f"{info}/RECORD,,\n")
    return wheel


def _digest(data: bytes) -> str:
    encoded = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={encoded}"
