"""A script's or a notebook's own model factory and data, kept in the study's database.

`studies.run(spec, model=build, data=(x, y))` needs no file: the factory (or a data loader) is
pickled by value with cloudpickle, arrays are saved as an .npz, and each is written as one
artifact of the study database (`hpstudy_artifacts`), which every worker reaches already: a
local process, a Ray task, or `hpstudy worker` on another machine. The spec then names them by
a kept reference, ``"study:model@<key>"`` and ``"study:data@<key>"``, which a worker resolves
from the database (`restore_kept`) before its first trial.

An artifact is a JSON header line (role, kind, name, module, source text, both hashes) and the
payload. The key of a function is the sha256 of its qualified name and source text (of its
pickle when `inspect` cannot read the source), so that a notebook which defines the same
function again, in a new kernel, resumes its study; the pickle's own sha256 is checked on every
load. The key of arrays is the sha256 of their names, types, shapes and bytes.

Loading a kept function runs code (unpickling calls whatever the pickle names): open only
studies whose database you trust.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import inspect
import io
import json
import os
import textwrap
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from studies._errors import StudyError
from studies.spec import STORAGE_ENV, StudySpec
from studies.storage._artifacts import DatabaseArtifactStore
from studies.storage._urls import create_engine, redact, sqlite_path
from trainer import (
    DataUnavailableError,
    TrainConfig,
    UserCodeError,
    UserFunction,
    is_kept_reference,
    keep_function,
    kept_function,
    kept_reference,
)

MAX_INLINE_MB = 512  # the most a study carries of one function's pickle or of one data set
_MB = 1024 * 1024
_ARTIFACT = "hpstudy-kept-{role}-{key}"  # artifact id of a kept function or data set
_FORMAT = 1  # the header's layout; a later one may add keys
_WHAT = {"model": "model factory", "data": "data loader"}


@dataclasses.dataclass(frozen=True)
class Kept:
    """A function (a model factory or data loader) or a data set, ready to keep in a study."""

    role: str  # "model" or "data": the [train] field it stands for (model, dataset)
    kind: str  # "function" (cloudpickled) or "arrays" (an .npz of x_train, y_train, ...)
    name: str  # the function's qualified name ("build"), or "arrays"
    module: str  # the function's module ("__main__" for a script or notebook), or ""
    code: str | None  # the function's source text; None when `inspect` cannot read it
    sha256: str  # the key: of name and source text (of the pickle without one), of the arrays
    payload_sha256: str  # of `payload`, checked on every load
    payload: bytes

    @property
    def ref(self) -> str:
        """The reference the spec's [train] field holds: ``"study:model@<key>"``."""
        return kept_reference(self.role, self.sha256)

    @property
    def artifact_id(self) -> str:
        return artifact_id(self.ref)

    def header(self) -> dict[str, Any]:
        """What the artifact says about its payload (everything but the bytes)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        del out["payload"]
        return {"format": _FORMAT, **out}

    def to_bytes(self) -> bytes:
        """The artifact: the header as one JSON line, then the payload."""
        return json.dumps(self.header()).encode() + b"\n" + self.payload

    @classmethod
    def from_bytes(cls, content: bytes, *, ref: str) -> Kept:
        """Reads an artifact written by `to_bytes`.

        Raises:
            StudyError: for content that is not such an artifact, or a payload whose hash
                differs from its header's.
        """
        line, _, payload = content.partition(b"\n")
        try:
            header = json.loads(line)
            fields = {
                f.name: header[f.name] for f in dataclasses.fields(cls) if f.name != "payload"
            }
            kept = cls(**fields, payload=payload)
        except (ValueError, KeyError, TypeError):
            raise StudyError(
                f"the study's artifact for '{ref}' is not one hpstudy wrote; run the study "
                f"again from its script or notebook (studies.run(..., model=..., data=...))"
            ) from None
        if hashlib.sha256(payload).hexdigest() != kept.payload_sha256:
            raise StudyError(
                f"the {kept.what} '{kept.name}' kept in the study is damaged (its bytes no longer "
                f"match their sha256 {kept.payload_sha256[:12]}); run the study again from its "
                f"script or notebook to store it anew"
            )
        return kept

    @property
    def what(self) -> str:
        return "data set" if self.kind == "arrays" else _WHAT[self.role]

    def function(self, original: Callable[..., Any] | None = None) -> UserFunction:
        """The kept function (or, for arrays, a loader that returns them), registered under
        `ref`, unpickled from the payload unless `original` is the function itself.

        Raises:
            StudyError: when the payload cannot be loaded in this process (a module it names
                is missing here, another Python), naming the function and the fix.
        """
        function = original if original is not None else self._load()
        return UserFunction(
            ref=self.ref,
            function=function,
            source="",
            sha256=self.sha256,
            name=self.name,
            module=self.module,
            code=self.code,
        )

    def _load(self) -> Callable[..., Any]:
        if self.kind == "arrays":
            import numpy as np

            with np.load(io.BytesIO(self.payload)) as npz:
                arrays = {key: npz[key] for key in npz.files}
            return _Returns(arrays)
        import cloudpickle

        try:
            return cloudpickle.loads(self.payload)
        except Exception as exc:
            missing = getattr(exc, "name", None)
            fix = (
                f"install module '{missing}' here, as on the machine that ran the study"
                if isinstance(exc, ModuleNotFoundError) and missing
                else "run this worker with the same Python and packages as the study's script"
            )
            raise StudyError(
                f"the {self.what} '{self.name}' (module {self.module}) kept in the study cannot "
                f"be loaded here: {type(exc).__name__}: {exc}; {fix}, or define what it uses in "
                f"the script or notebook itself (that is pickled with it)"
            ) from None


class _Returns:
    """A data loader that returns the arrays it was given: kept arrays as a loader."""

    def __init__(self, arrays: Mapping[str, Any]) -> None:
        self.arrays = dict(arrays)

    def __call__(self) -> dict[str, Any]:
        return dict(self.arrays)


def artifact_id(ref: str) -> str:
    """The artifact a kept reference ``"study:model@<key>"`` is stored under."""
    role, _, key = ref.partition(":")[2].partition("@")
    return _ARTIFACT.format(role=role, key=key)


def pack_function(function: Any, *, role: str, limit_mb: float = MAX_INLINE_MB) -> Kept:
    """Pickles a model factory (`role` "model") or data loader ("data") by value.

    Raises:
        StudyError: for something that is not callable, cannot be pickled, or pickles to more
            than `limit_mb` megabytes.
    """
    import cloudpickle

    what = _WHAT[role]
    name = getattr(function, "__qualname__", None) or type(function).__name__
    if not callable(function):
        raise StudyError(
            f"{role}= takes a {what} (a function or class), got a {type(function).__name__}"
        )
    try:
        payload = cloudpickle.dumps(function)
    except Exception as exc:
        raise StudyError(
            f"the {what} '{name}' cannot be pickled to keep in the study: "
            f"{type(exc).__name__}: {exc}; let it build what it needs (open files, locks, "
            f"connections) inside its body instead of capturing them"
        ) from None
    if len(payload) > limit_mb * _MB:
        raise StudyError(
            f"the {what} '{name}' pickles to {len(payload) / _MB:.0f} MB, over the "
            f"{limit_mb:g} MB a study carries: it captures large values (a closure or a global); "
            f"let it read them from a file instead"
        )
    code = _source(function)
    payload_sha256 = hashlib.sha256(payload).hexdigest()
    sha256 = (
        hashlib.sha256(f"{name}\n{code}".encode()).hexdigest()
        if code is not None
        else payload_sha256
    )
    module = getattr(function, "__module__", None) or ""
    return Kept(role, "function", name, module, code, sha256, payload_sha256, payload)


def _source(function: Any) -> str | None:
    try:
        return textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError):  # built in, made by exec, or a notebook Python cannot read
        return None


def pack_data(data: Any, *, task: str, limit_mb: float = MAX_INLINE_MB) -> Kept:
    """A data loader (a callable) pickled as `pack_function` does; arrays checked and saved.

    Args:
        data: a loader function; or a mapping with x_train and y_train (optionally x_test and
            y_test), an `(x_train, y_train)` tuple, or a map-style torch `Dataset` of (x, y)
            items (read once), as numpy arrays or tensors.
        task: "classification" or "regression": how the targets are checked.

    Raises:
        StudyError: for data that is none of those, that holds NaN or infinite values (or
            fails another check data files pass), or that is over `limit_mb` megabytes.
    """
    if callable(data) and not _is_dataset(data):
        return pack_function(data, role="data", limit_mb=limit_mb)
    arrays = checked_arrays(data, task=task)
    size = sum(a.nbytes for a in arrays.values())
    if size > limit_mb * _MB:
        raise StudyError(
            f"data of {size / _MB:.0f} MB is over the {limit_mb:g} MB a study carries; write it "
            f"to a file (numpy.savez('data.npz', x_train=..., y_train=...)) and set [train] "
            f"dataset = 'data.npz'"
        )
    import numpy as np

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    payload = buffer.getvalue()
    digest = hashlib.sha256()
    for key, values in arrays.items():
        digest.update(f"{key} {values.dtype.str} {values.shape}\n".encode())
        digest.update(np.ascontiguousarray(values).tobytes())
    sha256 = digest.hexdigest()
    payload_sha256 = hashlib.sha256(payload).hexdigest()
    return Kept("data", "arrays", "arrays", "", None, sha256, payload_sha256, payload)


def _is_dataset(data: Any) -> bool:
    try:
        from torch.utils.data import Dataset
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return isinstance(data, Dataset)


def checked_arrays(data: Any, *, task: str) -> dict[str, Any]:
    """`data` as numpy arrays by .npz key, checked as a data file is (see `pack_data`).

    Raises:
        StudyError: naming `data` and the problem.
    """
    from trainer import as_arrays, check_arrays

    if isinstance(data, tuple):
        if len(data) != 2:
            raise StudyError(
                f"data= as a tuple is (x_train, y_train), got {len(data)} items; give a mapping "
                f"with x_train, y_train, x_test and y_test for a test split of your own"
            )
        data = {"x_train": data[0], "y_train": data[1]}
    try:
        arrays = check_arrays(as_arrays(data, source="data="), "data=", task)
    except (UserCodeError, DataUnavailableError) as exc:
        raise StudyError(str(exc)) from None
    parts = {
        "x_train": arrays.x_train,
        "y_train": arrays.y_train,
        "x_test": arrays.x_test,
        "y_test": arrays.y_test,
    }
    return {key: values for key, values in parts.items() if values is not None}


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
    provenance: Mapping[str, Any],
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


def _fetch(role: str, ref: str, provenance: Mapping[str, Any], path: str) -> None:
    stored = str(provenance.get("storage") or "")
    urls = [os.environ.get(STORAGE_ENV, ""), stored]
    file = sqlite_path(stored) if stored else None
    if file is not None and not file.is_absolute():  # relative to where the study ran
        places = [Path(path).resolve().parent] if path else []
        places += [Path(str(provenance["folder"]))] if provenance.get("folder") else []
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
    study = provenance.get("study", "its study")
    looked = f"looked in {', '.join(tried)}" if tried else "no study database is named"
    raise StudyError(
        f"{path or 'the config'} trains the {_named(role)} "
        f"'{ref}' kept in study '{study}', which is not loaded here ({looked}); give it "
        f"again (studies.train(path, {role}=...)), or set {STORAGE_ENV} to the study's "
        f"database URL"
    )
