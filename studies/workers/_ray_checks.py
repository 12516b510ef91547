"""What `hpstudy run --ray` refuses before anything starts, each with the problem and the fix.

Two rounds: `check_spec` needs no cluster (the extra installed, the database, the folder that
travels, the user's files), `check_cluster` reads the cluster Ray joined (its nodes and GPUs).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from studies._errors import ParameterError
from studies.spec import RaySettings, StudySpec
from studies.storage import redact, sqlite_path
from trainer import BUILTIN_DATASETS, parse_reference

MAX_FOLDER_MB = 100  # the spec's folder travels with the job up to this size
# Left out of the folder that travels: databases, logs, caches, environments.
EXCLUDES = (
    "*.db",
    "*.db-wal",
    "*.db-shm",
    "*.sqlite",
    "hpstudy-logs/",
    ".git/",
    "__pycache__/",
    ".venv/",
    ".mypy_cache/",
    ".pytest_cache/",
)
_EXCLUDED_DIRS = {e.rstrip("/") for e in EXCLUDES if e.endswith("/")}
_EXCLUDED_SUFFIXES = tuple(e.lstrip("*") for e in EXCLUDES if e.startswith("*"))


def import_ray() -> ModuleType:
    """Ray, imported only on the Ray path.

    Raises:
        StudyError: when the extra is not installed, with the command that installs it.
    """
    try:
        import ray
    except ImportError:
        raise ParameterError(
            "`ray` needs Ray, which is not installed: pip install 'hpstudy[ray]'"
        ) from None
    return ray


def shipped_folder(spec: StudySpec, settings: RaySettings) -> Path | None:
    """The folder that travels to the nodes (a cluster only: a local Ray shares this disk)."""
    if settings.address is None or not spec.folder or not Path(spec.folder).is_dir():
        return None
    return Path(spec.folder)


def folder_bytes(folder: Path, *, limit: int | None = None) -> int:
    """The size of what travels of `folder` (without `EXCLUDES`); stops counting past `limit`."""
    total = 0
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in _EXCLUDED_DIRS]
        for name in files:
            if name.endswith(_EXCLUDED_SUFFIXES):
                continue
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                continue
            if limit is not None and total > limit:
                return total
    return total


def check_spec(spec: StudySpec, settings: RaySettings) -> None:
    """Refusals that need no cluster.

    Raises:
        StudyError: naming each problem and its fix.
    """
    problems: list[str] = []
    if settings.address is not None and sqlite_path(spec.storage) is not None:
        problems.append(_sqlite_problem(spec, f"the Ray cluster at {settings.address}"))
    folder = shipped_folder(spec, settings)
    if folder is not None:
        limit = MAX_FOLDER_MB * 1024 * 1024
        size = folder_bytes(folder, limit=limit)
        if size > limit:
            problems.append(
                f"the spec's folder {folder} holds more than {MAX_FOLDER_MB} MB (databases and "
                f"logs left out), too much to send to every node with the job; move large data "
                f"to a path every node sees (a shared file system) and name it by its absolute "
                f"path in [train], or keep only the spec, the model code and small data there"
            )
        problems += _paths_outside(spec, folder)
    if problems:
        raise ParameterError("cannot run on Ray:\n  - " + "\n  - ".join(problems))


def check_cluster(
    spec: StudySpec, settings: RaySettings, nodes: Iterable[Mapping[str, Any]]
) -> None:
    """Refusals that read the cluster: `nodes` as `ray.nodes()` lists them.

    Raises:
        StudyError: naming each problem and its fix.
    """
    alive = [node for node in nodes if node.get("Alive")]
    gpus = sum(float(node.get("Resources", {}).get("GPU", 0)) for node in alive)
    cpus = max((float(node.get("Resources", {}).get("CPU", 0)) for node in alive), default=0.0)
    problems: list[str] = []
    if len(alive) > 1 and sqlite_path(spec.storage) is not None:
        problems.append(_sqlite_problem(spec, f"a Ray cluster of {len(alive)} nodes"))
    if settings.gpus_per_worker > 0 and gpus == 0:
        problems.append(
            f"{settings.gpus_per_worker:g} GPU(s) per worker asked, but the Ray cluster has no "
            f"GPU; add GPU nodes, or run on CPUs with `gpus_per_worker=0`"
        )
    if settings.cpus_per_worker > cpus:
        problems.append(
            f"{settings.cpus_per_worker:g} CPU(s) per worker asked, but no Ray node has more "
            f"than {cpus:g}; ask for fewer with `cpus_per_worker`"
        )
    if problems:
        raise ParameterError("cannot run on Ray:\n  - " + "\n  - ".join(problems))


def _sqlite_problem(spec: StudySpec, where: str) -> str:
    return (
        f"the study's database {redact(spec.storage)} is a SQLite file, which workers on other "
        f"nodes of {where} cannot share; use PostgreSQL (`storage=env:NAME` or "
        f"HPSTUDY_STORAGE=postgresql://user@host:5432/dbname), or run on this machine "
        f"without an address (`ray=True` starts a local Ray)"
    )


def _paths_outside(spec: StudySpec, folder: Path) -> list[str]:
    """The user's files that a node cannot reach: relative paths outside the shipped folder."""
    problems = []
    train = spec.train
    for key, value in (("model", train.model), ("dataset", train.dataset)):
        ref = parse_reference(value)
        if ref is not None:
            if not ref.is_file:
                continue  # an importable module: installed on the nodes, like hpstudy
            path = Path(ref.target)
        elif key == "dataset" and value not in BUILTIN_DATASETS:
            path = Path(value).expanduser()
        else:
            continue
        if path.is_absolute():
            continue  # the user says every node sees it (a shared file system)
        inside = (folder / path).resolve()
        if not inside.is_relative_to(folder.resolve()):
            problems.append(
                f"train.{key}: {value} lies outside the spec's folder {folder}, which is all that "
                f"travels to the nodes; move it into that folder, or give an absolute path that "
                f"every node sees (a shared file system)"
            )
    return problems
