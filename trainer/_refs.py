"""The user's code, named by a reference: ``"pkg.module:build"`` or ``"path/models.py:build"``.

A reference names a function (or class) in an importable module or in a Python file. Files are
found relative to each folder of ``search_path`` first (studies pass the spec's folder), then
to the current folder; modules are imported with the ``search_path`` folders in front of
``sys.path``. A file is run once per process and version: a second load of an unchanged file
(same path, modification time and size) costs a dictionary look-up, a changed one is run again.
A module is imported once per process, as Python always does; its content hash is read again
when its file changes.

A function that lives in no file (one a script's ``__main__`` or a notebook cell defines) is
kept in a study instead: its reference is ``"study:model@<16 hex digits>"`` (or
``"study:data@..."``), and the process that runs it registers the function under that
reference first (`keep_function`), from the study or from the caller's hands.

This module needs neither torch nor numpy: validating a config only checks a reference's
syntax, loading it imports what the user's file imports.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import hashlib
import importlib
import importlib.util
import os
import re
import sys
import sysconfig
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from trainer._errors import ConfigError

_NAME = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"  # dotted Python identifiers
_REFERENCE = re.compile(rf"^(?P<target>.+):(?P<name>{_NAME})$")
_MODULE = re.compile(rf"^{_NAME}$")
_KEPT = re.compile(r"^study:(?P<role>model|data)@(?P<key>[0-9a-f]{16})$")
KEPT_ROLES = ("model", "data")

SearchPath = Sequence[str | Path]


class UserCodeError(ConfigError):
    """The user's model factory or data loader cannot be used; the message says why and the fix."""

    def __init__(self, message: str) -> None:
        self.problems = [message]
        self.source = None
        ValueError.__init__(self, message)


@dataclasses.dataclass(frozen=True)
class Reference:
    """A parsed reference: a module name or a ``.py`` path, and an attribute inside it."""

    target: str  # "package.module" or "path/to/models.py"; "study" for a kept function
    name: str  # the attribute, e.g. "build" or "Net.build"; a kept function's "model@<key>"
    kept: bool = False  # a function kept in a study (see `keep_function`), not in a file

    @property
    def is_file(self) -> bool:
        return self.target.endswith(".py")


def parse_reference(text: str) -> Reference | None:
    """The reference `text` spells, or None when it is not one (a name or a plain path)."""
    if _KEPT.match(text):
        return Reference("study", text.partition(":")[2], kept=True)
    found = _REFERENCE.match(text)
    if found is None:
        return None
    target = found["target"]
    if target.endswith(".py") or _MODULE.match(target):
        return Reference(target, found["name"])
    return None


@dataclasses.dataclass(frozen=True)
class UserFunction:
    """A resolved reference: the callable and the identity of the file that defines it."""

    ref: str  # the reference as written
    function: Callable[..., Any]
    source: str  # absolute path of the module's file ("" for a module without one)
    sha256: str  # hex content hash of `source` ("" when there is none)
    # A function kept in a study: its qualified name and module, and its source text (None
    # when `inspect` could not read it); its sha256 is that of the source text.
    name: str = ""
    module: str = ""
    code: str | None = None

    def identity(self) -> dict[str, str]:
        """ref, source and sha256 (and a kept function's name, module and source text):
        provenance that travels with an export."""
        out = {"ref": self.ref, "source": self.source, "sha256": self.sha256}
        if self.name:
            out.update(name=self.name, module=self.module)
        if self.code is not None:
            out["code"] = self.code
        return out


_KEPT_FUNCTIONS: dict[str, UserFunction] = {}  # kept reference -> the function, this process


def kept_reference(role: str, digest: str) -> str:
    """The reference of a function (`role` "model") or data ("data") kept in a study under
    the hex hash `digest`: ``"study:model@<its first 16 digits>"``."""
    if role not in KEPT_ROLES:
        raise ValueError(f"role must be one of {KEPT_ROLES}, got {role!r}")
    return f"study:{role}@{digest[:16]}"


def is_kept_reference(text: str) -> bool:
    """Whether `text` names a function kept in a study (``"study:model@..."``)."""
    return _KEPT.match(text) is not None


def keep_function(function: UserFunction) -> None:
    """Registers `function` under its kept reference (`function.ref`) in this process, so that
    `load_function` finds it; a later registration under the same reference replaces it."""
    if not is_kept_reference(function.ref):
        raise ValueError(f"'{function.ref}' is not a kept reference ('study:model@<key>')")
    _KEPT_FUNCTIONS[function.ref] = function


def kept_function(ref: str) -> UserFunction | None:
    """The function registered under the kept reference `ref` in this process, if any."""
    return _KEPT_FUNCTIONS.get(ref)


def load_factory(ref: str, *, search_path: SearchPath = ()) -> UserFunction:
    """Resolves a model factory reference (see `load_function`)."""
    return load_function(ref, search_path=search_path, what="model factory")


def load_loader(ref: str, *, search_path: SearchPath = ()) -> UserFunction:
    """Resolves a data loader reference (see `load_function`)."""
    return load_function(ref, search_path=search_path, what="data loader")


def load_function(
    ref: str, *, search_path: SearchPath = (), what: str = "function"
) -> UserFunction:
    """Imports the module or runs the file of `ref` and returns the callable it names.

    Args:
        ref: ``"package.module:name"`` or ``"path/to/file.py:name"``.
        search_path: folders to look in before the current folder (files) or before
            ``sys.path`` (modules).
        what: how messages call the callable ("model factory", "data loader").

    Raises:
        UserCodeError: the reference is malformed, its file or module cannot be found or fails
            to load, it lacks the name, or the name is not callable.
    """
    parsed = parse_reference(ref)
    if parsed is None:
        raise UserCodeError(
            f"{what} '{ref}' is not a reference; write 'package.module:function' or "
            f"'path/to/file.py:function'"
        )
    if parsed.kept:
        return _kept(ref, what)
    folders = [Path(p).expanduser().resolve() for p in search_path]
    if parsed.is_file:
        path = _find_file(parsed, folders, ref, what)
        module, digest = _run_file(str(path), _stamp(path))
        source, where = str(path), parsed.target
    else:
        module = _import(parsed, folders, ref, what)
        file = getattr(module, "__file__", None)
        source = os.path.abspath(file) if file else ""
        digest = _file_hash(source, _stamp(Path(source))) if source else ""
        where = f"module '{parsed.target}'"
    function = _attribute(module, parsed, ref, what, where)
    return UserFunction(ref=ref, function=function, source=source, sha256=digest)


def _kept(ref: str, what: str) -> UserFunction:
    function = _KEPT_FUNCTIONS.get(ref)
    if function is None:
        raise UserCodeError(
            f"{what} '{ref}' is a function kept in a study and not loaded in this process; "
            f"let hpstudy load it from the study's database (a worker, or hpstudy train on an "
            f"export whose study it can reach), or give it again: studies.train(path, "
            f"{'model' if ref.startswith('study:model') else 'data'}=...)"
        )
    return function


def _find_file(parsed: Reference, folders: list[Path], ref: str, what: str) -> Path:
    relative = Path(parsed.target).expanduser()
    # The spec's (or exported config's) folder first, so that a worker started elsewhere
    # finds the file written beside it; then the current folder.
    places = [relative] if relative.is_absolute() else [f / relative for f in folders]
    places += [] if relative.is_absolute() else [Path.cwd() / relative]
    for place in places:
        if place.is_file():
            return place.resolve()
    looked = ", ".join(str(p.parent) for p in places)
    raise UserCodeError(
        f"{what} '{ref}': file {parsed.target} not found (looked in {looked}); put "
        f"{relative.name} beside the spec or give its path"
    )


def _stamp(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_mtime_ns, info.st_size


@functools.lru_cache(maxsize=64)
def _file_hash(path: str, stamp: tuple[int, int]) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@functools.lru_cache(maxsize=32)
def _run_file(path: str, stamp: tuple[int, int]) -> tuple[ModuleType, str]:
    """Runs a ``.py`` file as a module of its own; cached by path and (mtime, size)."""
    content = Path(path).read_bytes()
    digest = hashlib.sha256(content).hexdigest()
    stem = re.sub(r"\W", "_", Path(path).stem)
    name = f"_hpstudy_user_{stem}_{digest[:12]}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None  # a .py path always has a spec
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickle look classes up there
    try:
        # Its folder is importable while it runs, so `from layers import Block` next to it works.
        with _on_sys_path([Path(path).parent]):
            spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise UserCodeError(f"running {path} failed: {type(exc).__name__}: {exc}") from exc
    return module, digest


def _import(parsed: Reference, folders: list[Path], ref: str, what: str) -> ModuleType:
    importlib.invalidate_caches()  # the file may be newer than the import system's listings
    try:
        with _on_sys_path(folders):
            return importlib.import_module(parsed.target)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if parsed.target == missing or parsed.target.startswith(missing + "."):
            leaf = parsed.target.rsplit(".", 1)[-1]
            raise UserCodeError(
                f"{what} '{ref}': cannot import module '{parsed.target}' (no module '{missing}' "
                f"on the search path: {', '.join(_shown_path(folders))}); put {leaf}.py beside "
                f"the spec or give its path, e.g. 'path/to/{leaf}.py:{parsed.name}'"
            ) from None
        raise UserCodeError(
            f"{what} '{ref}': importing module '{parsed.target}' failed: {exc}"
        ) from exc
    except Exception as exc:
        raise UserCodeError(
            f"{what} '{ref}': importing module '{parsed.target}' failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


@contextlib.contextmanager
def _on_sys_path(folders: Sequence[Path]) -> Iterator[None]:
    """Puts folders in front of ``sys.path`` for the duration of a block."""
    added = [str(f) for f in folders if str(f) not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for folder in added:
            if folder in sys.path:
                sys.path.remove(folder)


def _shown_path(folders: list[Path]) -> list[str]:
    """The search path a user can act on: `folders`, the current folder and their own entries
    of ``sys.path``, without the standard library and installed packages."""
    system = {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    shown = [str(f) for f in folders]
    for entry in sys.path:
        entry = entry or os.getcwd()
        installed = any(entry.startswith(s) for s in system) or entry.endswith(".zip")
        if installed or "-packages" in entry or entry in shown or not os.path.isdir(entry):
            continue  # the standard library, packages, import hooks: nothing to act on
        if Path(entry, "python").exists():  # a venv's bin folder (the script's own folder)
            continue
        shown.append(entry)
    return shown


def _attribute(module: ModuleType, parsed: Reference, ref: str, what: str, where: str) -> Any:
    value: Any = module
    for part in parsed.name.split("."):
        if not hasattr(value, part):
            own = _callables(module)
            hint = difflib.get_close_matches(part, own, n=1)
            mean = f" (did you mean '{hint[0]}'?)" if hint else ""
            listed = ", ".join(own) if own else "none"
            raise UserCodeError(
                f"{what} '{ref}': {where} has no '{part}'{mean}; its functions and classes: "
                f"{listed}"
            )
        value = getattr(value, part)
    if not callable(value):
        raise UserCodeError(
            f"{what} '{ref}': '{parsed.name}' is a value of type {type(value).__name__}, not "
            f"a function or class; name one that can be called"
        )
    return value


def _callables(module: ModuleType) -> list[str]:
    """The public functions and classes a module defines (or, if none, all it holds)."""
    public = {n: v for n, v in vars(module).items() if callable(v) and not n.startswith("_")}
    own = [n for n, v in public.items() if getattr(v, "__module__", None) == module.__name__]
    return sorted(own or public)


def resolve_data_path(dataset: str, search_path: SearchPath = ()) -> str:
    """A relative data file or folder found in a `search_path` folder, else `dataset` as it is.

    Built-in names and loader references are returned unchanged; so is a path found nowhere,
    which then resolves against the current folder (and its error says so).
    """
    from trainer._config import BUILTIN_DATASETS  # _config imports this module

    if dataset in BUILTIN_DATASETS or parse_reference(dataset) is not None:
        return dataset
    path = Path(dataset).expanduser()
    if path.is_absolute():
        return str(path)
    for folder in search_path:
        if (Path(folder) / path).exists():
            return str((Path(folder) / path).resolve())
    return dataset
