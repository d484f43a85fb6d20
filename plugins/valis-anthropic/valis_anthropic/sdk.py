"""The ``anthropic`` SDK is imported only when an instance is first used, and then on a worker
thread: importing it takes about a second, which neither the application's start-up (for a
plugin installed but not configured) nor its event loop should pay."""

from __future__ import annotations

import asyncio
import importlib
import sys


async def load(module: str) -> None:
    """Import ``module`` (one of this plugin's modules built on the SDK) unless it is loaded."""
    if module not in sys.modules:
        await asyncio.to_thread(importlib.import_module, module)
