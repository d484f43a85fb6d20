"""Build a real (pure-Python, one-module) plugin wheel for pip to install in tests, without a
build backend: a wheel is a zip file with a ``.dist-info`` folder and a RECORD of hashes."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

from valis_desktop.api import ENTRY_POINT_GROUP

PROVIDER_PLUGIN = '''\
"""{summary}"""

from collections.abc import AsyncIterator

from valis_desktop.api import ChatRequest, Provider, StreamItem, hookimpl


class _Provider(Provider):
    id = {name!r}
    display_name = "Wheel sample {version}"

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamItem]:
        yield "{version} says: "
        yield request.prompt


@hookimpl
def register_providers(register):
    register(_Provider())
'''


def build_plugin_wheel(
    folder: Path,
    name: str,
    version: str = "1.0",
    *,
    summary: str = "A plugin built as a wheel for the tests.",
    homepage: str = "https://example.org/wheel-sample",
) -> Path:
    """A wheel of distribution ``name`` whose plugin (also ``name``) registers a provider with
    that id which answers "<version> says: <prompt>"."""
    module = name.replace("-", "_")
    info = f"{module}-{version}.dist-info"
    files = {
        f"{module}.py": PROVIDER_PLUGIN.format(summary=summary, name=name, version=version),
        f"{info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: {summary}\n"
            f"Project-URL: Homepage, {homepage}\n"
        ),
        f"{info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
        f"{info}/entry_points.txt": f"[{ENTRY_POINT_GROUP}]\n{name} = {module}\n",
    }
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
