"""The writer of benchmarks/RESULTS.md's sections, shared by the benchmarks that `--record`.

Each recording benchmark owns one `## ` section of RESULTS.md, named by its heading line.
Recording replaces that section, from its heading to the next `## ` heading (or the end of the
file), and leaves every byte of the other sections as it was, so benchmarks recorded at
different times, on different branches, share one file. A section not there yet is appended.

The benchmarks run as modules from the repository root (`.venv/bin/python -m
benchmarks.trainer_speed`), so that they and their tests import this module the same way, as
`benchmarks._results`.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Sequence
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def write_section(heading: str, body: str | Sequence[str], *, path: Path = RESULTS) -> None:
    """Replaces the section under `heading` in `path` with `body`, or appends it.

    The section is written as the heading, a blank line, the body and, when another section
    follows, a blank line before it. The file is replaced at once (a temporary file, then
    `os.replace`): a reader sees the old file or the new one, never half of it.

    Args:
        heading: the section's heading line, e.g. `"## Trainer speed (issue 2)"`.
        body: the section's text without its heading, whole or as lines.
        path: the results file; it is created, with a title, if missing.

    Raises:
        ValueError: `heading` is not one `## ` heading line.
    """
    if not heading.startswith("## ") or "\n" in heading:
        raise ValueError(
            f"heading must be one line starting with '## ' (a RESULTS.md section), got {heading!r}"
        )
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    lines = body.split("\n") if isinstance(body, str) else list(body)
    section = "\n".join([heading, "", *lines]).strip("\n") + "\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    found = pattern.search(text + "\n" * (not text.endswith("\n")))
    if found is None:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        last = found.end() >= len(text)
        text = text[: found.start()] + section + ("" if last else "\n" + text[found.end() :])
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def shown_command(module: str, args: Sequence[str]) -> str:
    """The command line a recorded section shows for `module` run with `args`, as typed from the
    repository root (`sys.argv[0]` of a module run is its absolute path, which says nothing)."""
    return shlex.join([".venv/bin/python", "-m", module, *args])
