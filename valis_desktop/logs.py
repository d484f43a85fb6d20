"""Logging for the application: a rotating file in the platform's log directory."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

import platformdirs

APP_NAME = "valis-desktop"


def log_directory() -> Path:
    return Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))


def configure_logging(verbose: bool = False) -> Path:
    """Send INFO and above to ``valis-desktop.log`` (1 MB × 3 files); with ``verbose`` also to
    stderr. Returns the log file's path."""
    directory = log_directory()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{APP_NAME}.log"
    file_handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=1_000_000, backupCount=3, encoding="utf-8"
    )
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(file_handler)
    if verbose:
        stream = logging.StreamHandler()
        stream.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(stream)
    return path
