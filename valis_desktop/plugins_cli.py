"""``valis-desktop plugins``: list, install, uninstall, enable and disable provider plugins."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from importlib.metadata import entry_points
from typing import Any

from pydantic import ValidationError

from valis_desktop.api import ENTRY_POINT_GROUP, describe_invalid
from valis_desktop.core import plugin_installer, secrets
from valis_desktop.core.plugins import PluginHost, PluginRecord
from valis_desktop.core.provider_manager import ProviderManager
from valis_desktop.core.settings import load_settings, read_raw, save_settings


def add_parser(commands: Any) -> None:
    """Add the ``plugins`` command to the ``valis-desktop`` subparsers."""
    plugins = commands.add_parser("plugins", help="list, install, remove, enable, disable plugins")
    actions = plugins.add_subparsers(dest="plugins_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="the plugins, their states and providers")
    listing.add_argument("--json", action="store_true", help="print JSON for scripts")
    install = actions.add_parser("install", help="install plugins with pip")
    install.add_argument(
        "specs",
        nargs="+",
        metavar="SPEC",
        help="a package name, a local directory, a wheel or sdist, a VCS URL",
    )
    uninstall = actions.add_parser("uninstall", help="remove a plugin's distribution")
    uninstall.add_argument("name", metavar="NAME", help="the plugin or its distribution")
    enable = actions.add_parser("enable", help="load a disabled plugin again")
    enable.add_argument("name", metavar="NAME")
    disable = actions.add_parser("disable", help="keep a plugin from loading")
    disable.add_argument("name", metavar="NAME")


def run(args: argparse.Namespace, *, safe_mode: bool = False) -> int:
    command = args.plugins_command
    if command == "list":
        return list_plugins(as_json=args.json, safe_mode=safe_mode)
    if command == "install":
        return _pip(plugin_installer.install(args.specs, _print_line))
    if command == "uninstall":
        return _uninstall(args.name)
    return _set_disabled(args.name, disabled=command == "disable")


def plugin_records(*, safe_mode: bool = False) -> list[PluginRecord]:
    """Every plugin as the application would load it now, with the providers it registers."""
    settings = load_settings().settings
    host = PluginHost(
        safe_mode=safe_mode,
        disabled=settings.plugins.disabled,
        settings=settings.plugin_tables(),
        secrets=secrets.read_secret,
    )
    host.load()
    host.register_providers(ProviderManager(settings.engine_config()))
    return list(host.records.values())


def list_plugins(*, as_json: bool = False, safe_mode: bool = False) -> int:
    records = plugin_records(safe_mode=safe_mode)
    if as_json:
        print(json.dumps([_as_dict(record) for record in records], indent=2))
        return 0
    for record in records:
        origin = "built-in" if record.builtin else f"{record.distribution} {record.version}"
        state = str(record.state)
        if record.error:
            state += f": {record.error_summary}"
        providers = ", ".join(record.providers) or "no providers"
        hooks = f"  hooks: {', '.join(record.hooks)}" if record.hooks else ""
        print(f"{record.name}  ({origin.strip()})  {state}  [{providers}]{hooks}")
    if safe_mode:
        print("Safe mode: built-in plugins only.", file=sys.stderr)
    return 0


def _as_dict(record: PluginRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "builtin": record.builtin,
        "distribution": record.distribution,
        "version": record.version,
        "state": str(record.state),
        "error": record.error_summary,
        "providers": list(record.providers),
        "hooks": list(record.hooks),
        "description": record.description,
        "homepage": record.homepage,
    }


def _print_line(line: str) -> None:
    print(line, flush=True)


def _pip(run_pip: Any) -> int:
    try:
        result: plugin_installer.PipResult = asyncio.run(run_pip)
    except plugin_installer.InstallerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if result.ok:
        return 0
    print(f"pip failed (exit status {result.returncode}):", file=sys.stderr)
    print(result.reason, file=sys.stderr)
    return result.returncode or 1


def _distribution_of(name: str) -> str | None:
    """The distribution holding the plugin (entry point) called ``name``, if installed."""
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        if entry_point.name == name and entry_point.dist is not None:
            return entry_point.dist.name
    return None


def _uninstall(name: str) -> int:
    distribution = _distribution_of(name) or name
    return _pip(plugin_installer.uninstall([distribution], _print_line))


def _set_disabled(name: str, *, disabled: bool) -> int:
    names = _plugin_names(name)
    raw = read_raw()
    plugins = dict(raw.get("plugins") or {})
    listed = [str(item) for item in plugins.get("disabled") or []]
    if disabled:
        if not names:
            print(f"error: there is no installed plugin named {name!r}", file=sys.stderr)
            return 1
        updated = listed + [n for n in names if n not in listed]
    else:
        gone = set(names) | {name}
        updated = [item for item in listed if item not in gone]
    if updated == listed:
        print(f"{name} is already {'disabled' if disabled else 'enabled'}.")
        return 0
    plugins["disabled"] = updated
    raw["plugins"] = plugins
    try:
        save_settings(raw)
    except ValidationError as error:
        print(
            f"error: the settings file is invalid ({describe_invalid(error)}); fix it first",
            file=sys.stderr,
        )
        return 1
    print(f"{name} is now {'disabled' if disabled else 'enabled'}.")
    return 0


def _plugin_names(name: str) -> list[str]:
    """The plugins (entry point names) that ``name`` means: a plugin, or a distribution's."""
    found = entry_points(group=ENTRY_POINT_GROUP)
    if any(entry_point.name == name for entry_point in found):
        return [name]
    wanted = _normalise(name)
    return [
        entry_point.name
        for entry_point in found
        if entry_point.dist is not None and _normalise(entry_point.dist.name) == wanted
    ]


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")
