"""The lock file installs what pyproject.toml asks for: an edited range without `make lock` fails.

`make test` installs requirements/dev.txt alone (`--no-deps`), so a dependency added to
pyproject.toml but not locked would be missing only on a fresh machine; this catches it here.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCKED_EXTRAS = ("test", "ray", "docs")  # the extras `make lock` compiles in


def locked() -> dict[str, str]:
    """name -> version of every `name==version` line of the lock."""
    text = (ROOT / "requirements" / "dev.txt").read_text()
    pins = re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s\\]+)", text, flags=re.M)
    return {canonicalize_name(name): version for name, version in pins}


def required() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in LOCKED_EXTRAS:
        lines += project["optional-dependencies"][extra]
    return [Requirement(line) for line in lines]


@pytest.mark.parametrize("requirement", required(), ids=str)
def test_each_requirement_is_locked_inside_its_range(requirement: Requirement) -> None:
    pins = locked()
    name = canonicalize_name(requirement.name)
    assert name in pins, f"{name} is not in requirements/dev.txt: run `make lock`"
    assert requirement.specifier.contains(pins[name], prereleases=True), (
        f"the lock has {name}=={pins[name]}, outside {requirement}: run `make lock`"
    )


def test_every_locked_package_has_a_hash() -> None:
    text = (ROOT / "requirements" / "dev.txt").read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9_.\-]+==)", text.split("\n", 1)[1])
    unhashed = [e.split()[0] for e in entries if "==" in e.split()[0] and "--hash=" not in e]
    assert not unhashed


def test_the_installer_is_locked_at_the_version_the_lock_names() -> None:
    pip = re.search(r"^pip==(\S+)", (ROOT / "requirements" / "pip.txt").read_text(), re.M)
    assert pip is not None and "--hash=" in (ROOT / "requirements" / "pip.txt").read_text()
    assert locked()["pip"] == pip.group(1)
