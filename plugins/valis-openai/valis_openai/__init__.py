"""Valis Desktop's ``openai`` provider: any OpenAI-compatible endpoint (OpenAI, Ollama, LM Studio,
vLLM, llama.cpp server, LiteLLM proxy, OpenRouter), several named instances at once."""

from valis_openai.connection_check import check_connection
from valis_openai.provider import OpenAIProvider
from valis_openai.settings import OpenAIInstance

__all__ = ["OpenAIInstance", "OpenAIProvider", "check_connection"]
