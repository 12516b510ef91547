"""The shared RESULTS.md writer (benchmarks/_results.py) replaces one section, nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks._results import shown_command, write_section

BEFORE = (
    "# Benchmark results\n"
    "\n"
    "## At a glance\n"
    "\n"
    "| a | b |\n"
    "\n"
    "## Trainer speed (issue 2)\n"
    "\n"
    "old figures\n"
    "Command: `old`\n"
    "\n"
    "## Trainer speed (issue 2), by hand\n"
    "\n"
    "a look-alike heading   \n"
    "### a subsection stays in its section\n"
    "\n"
    "## Last\n"
    "\n"
    "the end, without a final newline"
)


def results(tmp_path: Path, text: str = BEFORE) -> Path:
    path = tmp_path / "RESULTS.md"
    path.write_bytes(text.encode())
    return path


def test_replaces_one_section_and_leaves_the_others_byte_identical(tmp_path: Path) -> None:
    path = results(tmp_path)
    write_section("## Trainer speed (issue 2)", ["new figures", "", "Command: `new`"], path=path)
    head, _, tail = BEFORE.partition("## Trainer speed (issue 2)\n\nold figures\nCommand: `old`\n")
    assert (
        path.read_bytes()
        == (head + "## Trainer speed (issue 2)\n\nnew figures\n\nCommand: `new`\n" + tail).encode()
    )


def test_a_subsection_belongs_to_its_section(tmp_path: Path) -> None:
    path = results(tmp_path)
    write_section("## Trainer speed (issue 2), by hand", "replaced", path=path)
    text = path.read_text()
    assert "### a subsection" not in text
    assert text.endswith("replaced\n\n## Last\n\nthe end, without a final newline")
    assert "old figures\nCommand: `old`\n\n## Trainer speed (issue 2), by hand" in text


def test_the_last_section_is_replaced_to_the_end(tmp_path: Path) -> None:
    path = results(tmp_path)
    write_section("## Last", "new end\n\n", path=path)
    assert path.read_text() == BEFORE.replace("the end, without a final newline", "new end\n")


def test_a_new_section_is_appended(tmp_path: Path) -> None:
    path = results(tmp_path, BEFORE + "\n\n")
    write_section("## Pruning savings (issue 3)", "figures", path=path)
    assert path.read_text() == BEFORE + "\n\n## Pruning savings (issue 3)\n\nfigures\n"


def test_a_missing_file_is_created_with_a_title(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    write_section("## Pruning savings (issue 3)", ["figures"], path=path)
    assert path.read_text() == "# Benchmark results\n\n## Pruning savings (issue 3)\n\nfigures\n"
    assert [p.name for p in tmp_path.iterdir()] == ["RESULTS.md"]  # no temporary file left


@pytest.mark.parametrize("heading", ["Trainer speed", "# Title", "## two\nlines"])
def test_a_heading_that_is_not_a_section_is_refused(tmp_path: Path, heading: str) -> None:
    path = results(tmp_path)
    with pytest.raises(ValueError, match="heading must be one line starting with '## '"):
        write_section(heading, "x", path=path)
    assert path.read_bytes() == BEFORE.encode()


def test_the_shown_command_is_a_module_run_from_the_root() -> None:
    assert (
        shown_command("benchmarks.pruning", ["--seeds", "0", "--spec", "my spec.toml"])
        == ".venv/bin/python -m benchmarks.pruning --seeds 0 --spec 'my spec.toml'"
    )
