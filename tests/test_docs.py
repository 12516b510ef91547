"""Every `hpstudy` command in the README parses: a renamed command or flag fails here.

The commands themselves run in the CLI tests (test_cli_run, test_cli_read, test_export, ...).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from studies.cli import build_parser

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_commands() -> list[str]:
    """The `hpstudy ...` lines of the README's shell blocks, comments and `$` stripped."""
    blocks = re.findall(r"```(?:sh|bash|console)\n(.*?)```", README.read_text(), flags=re.S)
    commands = []
    for block in blocks:
        for line in block.splitlines():
            line = line.split(" #")[0].strip().removeprefix("$ ")
            line = re.sub(r"^(?:[A-Z_]+=\S+ )+", "", line)  # leading VAR=value assignments
            if line.startswith("hpstudy "):
                commands.append(line)
    return commands


def test_the_readme_shows_hpstudy_commands() -> None:
    names = {shlex.split(c)[1] for c in readme_commands()}
    assert {"run", "dashboard", "export", "train", "worker"} <= names


@pytest.mark.parametrize("command", readme_commands())
def test_each_readme_command_parses(command: str) -> None:
    build_parser().parse_args(shlex.split(command)[1:])
