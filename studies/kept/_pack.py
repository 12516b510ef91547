"""What a study keeps of a script's or notebook's own model factory and data, as bytes.

A model factory or data loader is pickled by value with cloudpickle (a function of `__main__`
or a notebook cell is; one of an installed module is pickled by name, and imported again where
it is loaded); arrays are checked as data files are and saved as an .npz. A `Kept` is one of
them as an artifact: a JSON header line (role, kind, name, module, source text, both hashes)
and the payload.

The key of a function is the sha256 of its qualified name and source text (of its pickle when
`inspect` cannot read the source), so that a notebook which defines the same function again,
in a new kernel, resumes its study; the pickle's own sha256 is checked on every load. The key
of arrays is the sha256 of their names, types, shapes and bytes.

Loading a kept function runs code (unpickling calls whatever the pickle names): open only
studies whose database you trust.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import io
import json
import textwrap
from collections.abc import Callable, Mapping
from typing import Any

from studies._errors import StudyError
from trainer import DataUnavailableError, UserCodeError, UserFunction, kept_reference

MAX_INLINE_MB = 512  # the most a study carries of one function's pickle or of one data set
_MB = 1024 * 1024
_ARTIFACT = "hpstudy-kept-{role}-{key}"  # artifact id of a kept function or data set
_FORMAT = 1  # the header's layout; a later one may add keys
WHAT = {"model": "model factory", "data": "data loader"}


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
        return "data set" if self.kind == "arrays" else WHAT[self.role]

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

    what = WHAT[role]
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
            y_test, and x_unlabeled for pre-training), an `(x_train, y_train)` tuple, or a
            map-style torch `Dataset` of (x, y) items (read once), as numpy arrays or tensors.
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
        "x_unlabeled": arrays.x_unlabeled,
    }
    return {key: values for key, values in parts.items() if values is not None}
