"""The plugin's hooks, announced through the ``valis_desktop.plugins`` entry point ``llm``: one
provider, ``llm.<model id>``, for each async model of the llm library and its plugins (or those
the settings' ``models`` list names)."""

from __future__ import annotations

import logging

from valis_desktop.api import PluginContext, RegisterProvider, hookimpl, shorten
from valis_llm_bridge.catalogue import chosen_models, load_llm
from valis_llm_bridge.ids import place
from valis_llm_bridge.provider import LLMProvider
from valis_llm_bridge.settings import read_settings

VALIS_API_VERSION = (1, 0)

log = logging.getLogger(__name__)


@hookimpl
def register_providers(register: RegisterProvider, context: PluginContext) -> None:
    settings, wrong = read_settings(context.settings)
    if settings is None:
        context.problem(
            f"[plugins.{context.plugin}] is not valid ({wrong}); no llm model is offered until "
            "it is fixed in the settings file."
        )
        return
    llm = load_llm(context.problem)
    if llm is None:
        return
    try:
        models = chosen_models(llm, settings.models, context.problem)
    except Exception as error:  # an llm plugin that fails while registering its models
        context.problem(
            f"llm could not list its models ({type(error).__name__}: {shorten(str(error))}), so "
            "none is offered. `llm models list` in a terminal shows the same error; fix or "
            "remove the llm plugin it names."
        )
        return
    for placement, model in zip(place([m.model_id for m in models]), models, strict=True):
        if placement.provider_id is None:
            context.problem(placement.problem)
            continue
        register(LLMProvider(placement.provider_id, model))
    log.info("llm models offered as providers: %d", len(models))
