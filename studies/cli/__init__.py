"""The `hpstudy` command line: a table of commands, each with its arguments and one `run`.

Every command parses its flags, calls one function of the public API (`studies`) and prints
what it returns; nothing here reaches below that API.
"""

from __future__ import annotations

from studies.cli._main import COMMANDS, Command, add_storage_option, build_parser, main, parse_set

__all__ = ["COMMANDS", "Command", "add_storage_option", "build_parser", "main", "parse_set"]
