"""The ``valis-desktop`` command."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from valis_desktop import __version__
from valis_desktop.core.engine import Engine
from valis_desktop.core.plugins import SAFE_MODE_ENV, PluginState, safe_mode_from_env
from valis_desktop.core.settings import load_settings
from valis_desktop.logs import configure_logging
from valis_desktop.plugins_cli import add_parser as add_plugins_parser
from valis_desktop.plugins_cli import run as run_plugins
from valis_desktop.terminal_chat import run_chat


def _chain(value: str) -> tuple[str, ...]:
    chain = tuple(part.strip() for part in value.split(",") if part.strip())
    if not chain:
        raise argparse.ArgumentTypeError("name at least one provider, e.g. local,fallback")
    return chain


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="valis-desktop", description="A desktop chat client for language models."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--safe-mode",
        action="store_true",
        help=f"load built-in plugins only (also: {SAFE_MODE_ENV}=1)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log to stderr too")
    # For bench/gui.py: report when the window is up, then quit.
    parser.add_argument("--exit-when-shown", action="store_true", help=argparse.SUPPRESS)
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", description="without a command, the window opens"
    )
    chat = commands.add_parser("chat", help="chat in the terminal")
    chat.add_argument(
        "--chain",
        type=_chain,
        help="comma-separated provider ids (default: the settings' default chain)",
    )
    chat.add_argument("--persona", help="persona id (default: assistant)")
    chat.add_argument(
        "-m",
        "--message",
        action="append",
        default=[],
        help="send this message and exit (repeatable); otherwise read stdin",
    )
    add_plugins_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(verbose=args.verbose)
    safe_mode = args.safe_mode or safe_mode_from_env()
    if args.command is None:
        from valis_desktop.app import run_app  # Qt loads only for the window

        return run_app(safe_mode=safe_mode, exit_when_shown=args.exit_when_shown)
    if args.command == "plugins":
        return run_plugins(args, safe_mode=safe_mode)
    loaded = load_settings()
    for problem in loaded.problems:
        print(problem, file=sys.stderr)
    engine = Engine.start(settings=loaded.settings, safe_mode=safe_mode)
    for record in engine.host.records.values():
        if record.state is PluginState.QUARANTINED:
            print(f"plugin {record.name!r} was not loaded: {record.error_summary}", file=sys.stderr)
        for problem in record.problems:
            print(f"plugin {record.name!r}: {problem}", file=sys.stderr)
    if safe_mode:
        print("Safe mode: built-in plugins only.", file=sys.stderr)
    persona = args.persona
    if persona is not None and persona not in engine.personas:
        known = ", ".join(sorted(engine.personas))
        print(f"There is no persona {persona!r}. Known personas: {known}.", file=sys.stderr)
        return 2
    chain = args.chain or engine.default_chain
    messages = args.message
    return asyncio.run(run_chat(engine, chain=chain, persona_id=persona, messages=messages))
