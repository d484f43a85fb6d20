"""Installing and removing plugin distributions with the running interpreter's pip.

pip runs in a subprocess (``sys.executable -m pip``) so that the application stays responsive;
its output is streamed line by line to a callback, and cancelling the task kills it. Every
install gets a constraints file, written at run time, that pins Valis Desktop and its core
dependencies at their installed versions: a plugin can never up- or downgrade them, and one
whose requirements conflict with them fails with pip's explanation, changing nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

CORE_DISTRIBUTIONS: tuple[str, ...] = (
    "valis-desktop",
    "PySide6-Essentials",
    "qasync",
    "pluggy",
    "pydantic",
)
"""Distributions a plugin may never change (Valis Desktop itself and its core dependencies)."""

LineCallback = Callable[[str], None]


class InstallerError(ValueError):
    """A request the installer refuses before running pip (shown to the user)."""


@dataclass
class PipResult:
    """How a pip run ended: its exit status and everything it printed (stdout and stderr)."""

    returncode: int
    output: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def reason(self) -> str:
        """What pip said from its first error on (or its last lines), for a failed run."""
        for index, line in enumerate(self.output):
            if line.lstrip().lower().startswith("error"):
                return "\n".join(self.output[index:]).strip()
        return "\n".join(self.output[-10:]).strip()


def core_versions(distributions: Iterable[str] = CORE_DISTRIBUTIONS) -> dict[str, str]:
    """The installed version of each core distribution (those not installed are left out)."""
    versions = {}
    for name in distributions:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            continue
    return versions


def constraints_text(versions: dict[str, str] | None = None) -> str:
    """The constraints file's lines: ``name==version`` for each core distribution. An editable
    install of valis-desktop (during development) satisfies its pin too."""
    pins = core_versions() if versions is None else versions
    return "".join(f"{name}=={pinned}\n" for name, pinned in pins.items())


@dataclass(frozen=True)
class Installer:
    """Where plugins are installed: by default the running interpreter's environment.

    ``install_args`` are added to every install (``--target DIR``, ``--no-index`` …) and
    ``environment`` to pip's environment (``PYTHONPATH`` so that pip finds what it removes)."""

    python: str | None = None
    install_args: tuple[str, ...] = ()
    environment: Mapping[str, str] = field(default_factory=dict)

    async def install(self, specs: Sequence[str], on_line: LineCallback | None = None) -> PipResult:
        return await install(
            specs,
            on_line,
            python=self.python,
            extra_args=self.install_args,
            environment=self.environment,
        )

    async def uninstall(
        self, names: Sequence[str], on_line: LineCallback | None = None
    ) -> PipResult:
        return await uninstall(names, on_line, python=self.python, environment=self.environment)


async def install(
    specs: Sequence[str],
    on_line: LineCallback | None = None,
    *,
    python: str | None = None,
    extra_args: Sequence[str] = (),
    environment: Mapping[str, str] | None = None,
) -> PipResult:
    """``pip install specs`` (names, directories, wheels, sdists, VCS URLs: whatever pip
    accepts) with the core distributions pinned. Cancel the task to kill pip."""
    specs = list(specs)
    if not specs:
        raise InstallerError("name at least one plugin to install")
    for spec in specs:
        if spec.startswith("-"):
            raise InstallerError(f"{spec!r} is an option, not a plugin to install")
    with tempfile.TemporaryDirectory(prefix="valis-pip-") as folder:
        constraints = Path(folder) / "constraints.txt"
        constraints.write_text(constraints_text(), encoding="utf-8")
        arguments = ["install", "--constraint", str(constraints), *extra_args, *specs]
        return await run_pip(arguments, on_line, python=python, environment=environment)


async def uninstall(
    names: Sequence[str],
    on_line: LineCallback | None = None,
    *,
    python: str | None = None,
    environment: Mapping[str, str] | None = None,
) -> PipResult:
    """``pip uninstall --yes names``; refuses the core distributions."""
    names = list(names)
    if not names:
        raise InstallerError("name at least one plugin to uninstall")
    core = {_normalise(name) for name in CORE_DISTRIBUTIONS}
    for name in names:
        if name.startswith("-"):
            raise InstallerError(f"{name!r} is an option, not a plugin to uninstall")
        if _normalise(name) in core:
            raise InstallerError(f"{name} is part of Valis Desktop, not a plugin")
    return await run_pip(
        ["uninstall", "--yes", *names], on_line, python=python, environment=environment
    )


async def run_pip(
    arguments: Sequence[str],
    on_line: LineCallback | None = None,
    *,
    python: str | None = None,
    environment: Mapping[str, str] | None = None,
) -> PipResult:
    """Run ``python -m pip arguments`` (the running interpreter by default), passing each line
    it prints to ``on_line``; ``environment`` is added to pip's. Cancelling kills pip and
    waits for it to end."""
    variables = dict(os.environ)
    variables.update(environment or {})
    variables.update(
        PYTHONUNBUFFERED="1",
        PIP_NO_INPUT="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_PROGRESS_BAR="off",
    )
    process = await asyncio.create_subprocess_exec(
        python or sys.executable,
        "-m",
        "pip",
        *arguments,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=variables,
    )
    assert process.stdout is not None
    output: list[str] = []
    try:
        async for raw in process.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            output.append(line)
            if on_line is not None:
                on_line(line)
        returncode = await process.wait()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    return PipResult(returncode, output)


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")
