"""`studies/` is layered: every module imports only from the layers below its own.

    cli -> studies (the public API) -> results -> workers -> kept -> storage, analysis
        -> spec -> (studies._errors)

The command line reaches nothing below the public API: it parses flags, calls one function
of `studies` and prints what it returns.

Imports inside functions count too: a late import that points the wrong way is still a
dependency the wrong way.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import studies

ROOT = Path(studies.__file__).parent
# Rank of each layer; a module may import layers of a lower rank only. storage and analysis
# share a rank and may not import each other.
LAYERS = {
    "spec": 1,
    "storage": 2,
    "analysis": 2,
    "kept": 3,  # the user's own functions and data, kept in the study's database
    "workers": 4,
    "results": 5,
    "cli": 7,
}
API = "studies"  # the public API: rank 6, between results and cli
BASE = {"studies._errors", "studies._lazy"}  # below every layer


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every `studies...` module that the file imports, with its line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif (  # importlib.import_module("studies.x._y") in the lazy loaders
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.startswith("studies.")
        ):
            names = [node.value]
        else:
            continue
        found += [(node.lineno, name) for name in names if name.split(".")[0] == "studies"]
    return found


def _modules() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if p.parent != ROOT)


def _api_modules() -> list[Path]:
    return sorted(
        p for p in ROOT.glob("*.py") if p.name not in ("_errors.py", "_lazy.py", "__main__.py")
    )


@pytest.mark.parametrize("path", sorted(ROOT.joinpath("cli").glob("*.py")), ids=lambda p: p.name)
def test_the_command_line_imports_only_the_public_api(path: Path) -> None:
    wrong = [
        f"line {line}: {name}"
        for line, name in _imports(path)
        if name != API and not name.startswith("studies.cli")
    ]
    assert not wrong, f"cli/{path.name} reaches below the public API: {wrong}"


@pytest.mark.parametrize("path", _api_modules(), ids=lambda p: p.name)
def test_the_public_api_never_imports_the_command_line(path: Path) -> None:
    wrong = [f"line {line}: {name}" for line, name in _imports(path) if _layer(name) == "cli"]
    assert not wrong, f"{path.name} imports the command line: {wrong}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_a_module_imports_only_the_layers_below_its_own(path: Path) -> None:
    own = path.relative_to(ROOT).parts[0]
    if own == "cli":  # checked above: the public API only
        return
    wrong = []
    for line, name in _imports(path):
        target = _layer(name)
        if name in BASE or target == own:
            continue
        if target is None or LAYERS[target] >= LAYERS[own]:
            wrong.append(f"line {line}: {name}")
    assert not wrong, f"{path.relative_to(ROOT)} ({own}) imports upwards or sideways: {wrong}"


def test_every_subpackage_is_a_known_layer() -> None:
    folders = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(LAYERS)


def test_the_check_sees_a_wrong_import(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("def f():\n    from studies.cli import main\n")
    assert _imports(module) == [(2, "studies.cli")]
