"""A script's or a notebook's own model factory and data, kept in the study's database.

`studies.run(spec, model=build, data=(x, y))` needs no file: the factory and the data are
packed (`_pack`) and each is written as one artifact of the study database
(`hpstudy_artifacts`), which every worker reaches already: a local process, a Ray task, or
`hpstudy worker` on another machine. The spec then names them by a kept reference,
``"study:model@<key>"`` and ``"study:data@<key>"``, which a worker resolves from the database
(`restore_kept`) before its first trial, and a retrain of an export (`restore_for_export`) from
the caller, this process or the study.

Loading a kept function runs code: open only studies whose database you trust.
"""

from __future__ import annotations

import copy
import io
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from studies._errors import StudyError
from studies.kept._pack import MAX_INLINE_MB, Kept, artifact_id, pack_data, pack_function
from studies.spec import STORAGE_ENV, StudySpec
from studies.storage import (
    DatabaseArtifactStore,
    Provenance,
    create_engine,
    redact,
    sqlite_path,
)
from trainer import (
    TrainConfig,
    is_kept_reference,
    keep_function,
    kept_function,
    kept_reference,
)


def name_kept(spec: Any, *, model: bool = False, data: bool = False) -> Any:
    """A dict spec (as the TOML file holds) whose [train] model and dataset (where `model`,
    `data`) are kept references, so that it validates as the spec of a factory before
    `keep_inline` packs the functions and sets their real keys (its `model_args` belong to
    the factory given as `model=`). Any other spec is returned as it is."""
    if not isinstance(spec, Mapping) or not (model or data):
        return spec
    named = copy.deepcopy(dict(spec))
    train = named.get("train", {})
    if not isinstance(train, dict):
        return named  # the spec's own check says what is wrong
    placeholder = "0" * 16
    if model:
        train["model"] = kept_reference("model", placeholder)
    if data:
        train["dataset"] = kept_reference("data", placeholder)
    named["train"] = train
    return named


def keep_inline(
    spec: StudySpec,
    *,
    model: Any = None,
    data: Any = None,
    limit_mb: float = MAX_INLINE_MB,
) -> StudySpec:
    """Keeps `model` and `data` in the study's database; the spec that names them.

    Each is also registered in this process (as the caller gave it), so the checks before the
    study starts and a later `studies.train` of its export here use them as they are.

    Args:
        spec: the study; its storage receives the artifacts.
        model: a model factory (called as a factory named in [train] model is).
        data: a loader or arrays (see `pack_data`).

    Returns:
        `spec` with [train] model and dataset set to the kept references.

    Raises:
        StudyError: for a function or data that cannot be kept (see `pack_function`,
            `pack_data`), or a database that cannot be written.
    """
    changes: dict[str, str] = {}
    packed: list[tuple[Kept, Any]] = []  # (kept, the caller's function; None for arrays)
    if model is not None:
        kept = pack_function(model, role="model", limit_mb=limit_mb)
        packed.append((kept, model))
        changes["model"] = kept.ref
    if data is not None:
        kept = pack_data(data, task=spec.train.task, limit_mb=limit_mb)
        packed.append((kept, data if kept.kind == "function" else None))
        changes["dataset"] = kept.ref
    if not packed:
        return spec
    store_kept(spec.storage, [kept for kept, _ in packed])
    for kept, original in packed:
        keep_function(kept.function(original))
    return spec.replace(train=spec.train.replace(**changes))


def store_kept(url: str, kept: Iterable[Kept]) -> None:
    """Writes each as an artifact of the database at `url` (replacing one of the same key).

    Raises:
        StudyError: for a database that cannot be reached or written.
    """
    engine = create_engine(url)
    try:
        store = DatabaseArtifactStore(engine)
        for item in kept:
            store.write(item.artifact_id, io.BytesIO(item.to_bytes()))
    except Exception as exc:  # sqlalchemy's errors: the URL is the user's
        raise StudyError(
            f"cannot keep the model or data in {redact(url)}: {type(exc).__name__}: {exc}"
        ) from None
    finally:
        engine.dispose()


def read_kept(url: str, ref: str) -> Kept | None:
    """The artifact kept under `ref` in the database at `url`, or None when there is none.

    Raises:
        StudyError: for a damaged artifact (see `Kept.from_bytes`).
    """
    from optuna.artifacts.exceptions import ArtifactNotFound

    engine = create_engine(url)
    try:
        with DatabaseArtifactStore(engine).open_reader(artifact_id(ref)) as reader:
            content = reader.read()
    except ArtifactNotFound:
        return None
    finally:
        engine.dispose()
    return Kept.from_bytes(content, ref=ref)


def kept_refs(config: TrainConfig) -> dict[str, str]:
    """The kept references a config names, by role: {"model": ..., "data": ...}."""
    fields = {"model": config.model, "data": config.dataset}
    return {role: ref for role, ref in fields.items() if is_kept_reference(ref)}


def restore_kept(url: str, config: TrainConfig, *, study: str = "") -> None:
    """Registers the functions and data `config` keeps in the database at `url`, in this
    process, before a worker's first trial; those registered already stay as they are.

    Raises:
        StudyError: for one the database lacks or that cannot be loaded here, naming the
            function and the fix; no trial has started then.
    """
    for role, ref in kept_refs(config).items():
        if kept_function(ref) is not None:
            continue
        kept = read_kept(url, ref)
        if kept is None:
            named = f"study '{study}'" if study else "the study"
            raise StudyError(
                f"{named} names the {_named(role)} '{ref}', but "
                f"its database {redact(url)} does not keep it; run the study again from its "
                f"script or notebook (studies.run(..., {role}=...)) to store it"
            )
        keep_function(kept.function())


def _named(role: str) -> str:
    return "model factory" if role == "model" else "data"


def restore_for_export(
    config: TrainConfig,
    provenance: Provenance,
    *,
    model: Any = None,
    data: Any = None,
    path: str = "",
) -> None:
    """Registers the functions and data an exported config keeps, for training it again.

    Each comes from the caller (`model`, `data`: checked against the export's key), from this
    process (the notebook that ran the study), or from the study's database: $HPSTUDY_STORAGE,
    else the storage the export's provenance names.

    Raises:
        StudyError: for a given function or data that is not the one the export trained, for
            `model` or `data` given to a config that does not keep one, or for one found
            nowhere, saying how to give it.
    """
    refs = kept_refs(config)
    for role, given in (("model", model), ("data", data)):
        ref = refs.get(role)
        if given is not None and ref is None:
            field = "model" if role == "model" else "dataset"
            raise StudyError(
                f"{role}= is for a config whose {field} is kept in a study ('study:{role}@...'); "
                f"{path or 'this config'} names {field} = '{getattr(config, field)}'"
            )
        if ref is None:
            continue
        if given is not None:
            kept = (
                pack_function(given, role="model")
                if role == "model"
                else pack_data(given, task=config.task)
            )
            if kept.ref != ref:
                raise StudyError(
                    f"the {kept.what} given as {role}= ('{kept.name}', key {kept.ref}) is not "
                    f"the one {path or 'the config'} trained ({ref}); give that one, or leave "
                    f"{role}= out to load it from the study"
                )
            keep_function(kept.function(given if kept.kind == "function" else None))
        elif kept_function(ref) is None:
            _fetch(role, ref, provenance, path)


def _fetch(role: str, ref: str, provenance: Provenance, path: str) -> None:
    stored = provenance.storage or ""
    urls = [os.environ.get(STORAGE_ENV, ""), stored]
    file = sqlite_path(stored) if stored else None
    if file is not None and not file.is_absolute():  # relative to where the study ran
        places = [Path(path).resolve().parent] if path else []
        places += [Path(provenance.folder)] if provenance.folder else []
        urls += [f"sqlite:///{place / file}" for place in places]
    tried: list[str] = []
    for url in dict.fromkeys(u for u in urls if u):
        file = sqlite_path(url)
        if file is not None and not file.is_file():  # not made by looking
            tried.append(f"{redact(url)} (no such file)")
            continue
        try:
            kept = read_kept(url, ref)
        except Exception as exc:  # unreachable, no such file, damaged: try the next one
            why = str(exc) if isinstance(exc, StudyError) else type(exc).__name__
            tried.append(f"{redact(url)} ({why})")
            continue
        if kept is not None:
            keep_function(kept.function())
            return
        tried.append(f"{redact(url)} (not there)")
    study = provenance.study or "its study"
    looked = f"looked in {', '.join(tried)}" if tried else "no study database is named"
    raise StudyError(
        f"{path or 'the config'} trains the {_named(role)} "
        f"'{ref}' kept in study '{study}', which is not loaded here ({looked}); give it "
        f"again (studies.train(path, {role}=...)), or set {STORAGE_ENV} to the study's "
        f"database URL"
    )
