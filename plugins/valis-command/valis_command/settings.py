"""One command-line model tool as the user configures it in the settings file::

    [[plugins.command.instances]]
    id = "llm-cli"
    name = "llm (Simon Willison's CLI)"
    argv = ["llm", "-m", "gpt-4o-mini"]
    format = "text"
    timeout = 120

The command runs without a shell: ``argv`` is the program and its arguments, word by word. Only
``shell = true`` hands a ``command`` string to the shell (for pipes and the like).
"""

from __future__ import annotations

import shlex
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from valis_desktop.api import ENV_NAME_PATTERN, PROVIDER_ID_PATTERN, refuse_secrets


class CommandInstance(BaseModel):
    """One command-line model tool."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    id: str = Field(pattern=PROVIDER_ID_PATTERN)
    """The provider's id in chains: lower-case letters, digits, ".", "_" or "-"."""
    name: str = Field("", max_length=80)
    """The name shown in the app (by default the id)."""
    argv: list[str] | None = Field(None, min_length=1)
    """The program and its arguments, word by word (e.g. llm, -m, gpt-4o-mini). Run without a
    shell."""
    shell: bool = False
    """Run "command" through the shell instead (for pipes and the like)."""
    command: str | None = Field(None, min_length=1)
    """A command line for the shell, used only when "shell" is on."""
    format: Literal["text", "json"] = "text"
    """How the conversation reaches the command's input: plain text ("System: …", "User: …",
    "Assistant: …" paragraphs, ending with your newest message), or a JSON array of
    {"role", "content"} objects."""
    timeout: float = Field(300.0, gt=0, le=86_400)
    """Seconds an answer may take in all; then the command is stopped."""
    limit: int = Field(1, ge=1, le=64)
    """How many copies of the command may run at once."""
    cwd: str | None = None
    """The folder the command runs in (by default the app's)."""
    env: dict[str, str] = Field(default_factory=dict)
    """Extra environment variables for the command (never a key: see "key env")."""
    key_env: str | None = Field(None, pattern=ENV_NAME_PATTERN)
    """An environment variable through which the command receives the key kept in the keychain
    for this instance, so that the key is neither in the command line nor in this file."""

    @model_validator(mode="before")
    @classmethod
    def _refuse_secrets(cls, data: Any) -> Any:
        return refuse_secrets(data)

    @model_validator(mode="after")
    def _one_way_to_run(self) -> CommandInstance:
        if self.shell:
            if self.command is None or self.argv is not None:
                raise ValueError("with shell = true, set 'command' (a string) and not 'argv'")
        elif self.argv is None or self.command is not None:
            raise ValueError(
                'set \'argv\' (a list such as ["llm", "-m", "gpt-4o-mini"]); a \'command\' '
                "string is run only with shell = true"
            )
        elif not self.argv[0]:
            raise ValueError("argv: the program's name (the first word) is empty")
        return self

    @property
    def command_line(self) -> str:
        """The command as the user would type it."""
        if self.shell:
            assert self.command is not None
            return self.command
        assert self.argv is not None
        return shlex.join(self.argv)

    @property
    def display_name(self) -> str:
        return self.name or f"{self.id} (command)"

    @property
    def description(self) -> str:
        return f"Runs `{self.command_line}` with the conversation on its input."
