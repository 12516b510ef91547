"""The README and the documentation pages say what the code does, and the site builds.

Every `hpstudy` command in a shell block of README.md, docs/*.md or benchmarks/RESULTS.md (the
Results page) parses with the real argument parser, so a renamed command or flag fails here;
every Python and TOML block parses; every page is in the site's navigation and every navigation
entry is a page. The commands themselves run in the CLI tests (test_cli_run, test_export, ...).
"""

from __future__ import annotations

import ast
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from studies.cli import COMMANDS, build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
RESULTS = ROOT / "benchmarks" / "RESULTS.md"  # the Results page includes it
TEXTS = [README, *PAGES, RESULTS]


def blocks(path: Path, *languages: str) -> list[tuple[int, str]]:
    """(line, code) of each fenced block in one of `languages`; line is its first code line."""
    text = path.read_text()
    pattern = rf"^```(?:{'|'.join(languages)})\n(.*?)^```"
    return [
        (text.count("\n", 0, match.start()) + 2, match.group(1))
        for match in re.finditer(pattern, text, flags=re.S | re.M)
    ]


def commands(path: Path) -> list[tuple[str, str]]:
    """(`file:line`, command) of each `hpstudy ...` line of the shell blocks, without its
    comment, `$ ` prompt, leading `VAR=value` assignments and the path of `.venv/bin/hpstudy`;
    a trailing `\\` continues it."""
    found = []
    for first, code in blocks(path, "sh", "bash", "console"):
        start, pending = first, ""
        for number, raw in enumerate(code.splitlines(), start=first):
            start = start if pending else number
            if raw.endswith("\\"):
                pending += raw[:-1]
                continue
            line, pending = (pending + raw).split(" #")[0].strip().removeprefix("$ "), ""
            line = re.sub(r"^(?:[A-Z_]+=\S+ +)+", "", line)
            line = re.sub(r"^\S*/hpstudy ", "hpstudy ", line)
            if line.startswith("hpstudy "):
                found.append((f"{path.relative_to(ROOT)}:{start}", line))
    return found


def located(path: Path, *languages: str) -> list[tuple[str, str]]:
    """(`file:line`, code) of each block in one of `languages`."""
    return [(f"{path.relative_to(ROOT)}:{line}", code) for line, code in blocks(path, *languages)]


def nav_pages(entries: Any) -> Iterator[str]:
    """Every page file the `nav` of mkdocs.yml names, at any depth."""
    if isinstance(entries, str):
        yield entries
    elif isinstance(entries, list):
        for entry in entries:
            yield from nav_pages(entry)
    elif isinstance(entries, dict):
        for value in entries.values():
            yield from nav_pages(value)


def nav() -> list[str]:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    return list(nav_pages(config["nav"]))


ALL_COMMANDS = [found for path in TEXTS for found in commands(path)]


def test_the_readme_shows_hpstudy_commands() -> None:
    names = {shlex.split(command)[1] for _, command in commands(README)}
    assert {"run", "dashboard", "export", "train", "worker"} <= names


def test_every_hpstudy_command_is_shown_in_the_docs() -> None:
    shown = {shlex.split(command)[1] for _, command in ALL_COMMANDS}
    assert {command.name for command in COMMANDS} - shown == set()


@pytest.mark.parametrize(("where", "command"), ALL_COMMANDS, ids=[w for w, _ in ALL_COMMANDS])
def test_each_command_parses(where: str, command: str) -> None:
    build_parser().parse_args(shlex.split(command)[1:])


PYTHON = [found for path in TEXTS for found in located(path, "python", "py")]
TOML = [found for path in TEXTS for found in located(path, "toml")]


@pytest.mark.parametrize(("where", "code"), PYTHON, ids=[w for w, _ in PYTHON])
def test_each_python_block_parses(where: str, code: str) -> None:
    ast.parse(code, filename=where)


@pytest.mark.parametrize(("where", "code"), TOML, ids=[w for w, _ in TOML])
def test_each_toml_block_parses(where: str, code: str) -> None:
    tomllib.loads(code)


def test_every_page_is_in_the_nav() -> None:
    assert {page.name for page in PAGES} - set(nav()) == set()


def test_every_nav_entry_is_a_page() -> None:
    assert [page for page in nav() if not (DOCS / page).is_file()] == []


def test_every_relative_link_of_the_readme_exists() -> None:
    links = re.findall(r"\]\(([^)#\s]+)", README.read_text())
    local = [link for link in links if "://" not in link]
    assert local, "the README links its pages"
    assert [link for link in local if not (ROOT / link).exists()] == []


@pytest.mark.slow
def test_the_site_builds_strictly(tmp_path: Path) -> None:
    """`make docs` in a temporary folder: a broken link, anchor or API reference fails it."""
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr
    assert (tmp_path / "python" / "index.html").is_file()
