"""The `hpstudy` command line: a table of commands, each with its arguments and one `run`."""

from __future__ import annotations

from studies.cli._dashboard import serve
from studies.cli._main import COMMANDS, Command, add_storage_option, build_parser, main

__all__ = ["COMMANDS", "Command", "add_storage_option", "build_parser", "main", "serve"]
