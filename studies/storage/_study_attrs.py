"""What hpstudy keeps in a study's user attributes, as one typed record.

The runner writes the spec, the user's code identity and the heartbeat when a study starts;
later commands add the learning-rate range tests, an ablation's table and a learning curve
over the training-set size. `StudyAttrs` names every key once: each is `hpstudy_` and the
field's name (`hpstudy_spec`, `hpstudy_heartbeat`, ...), a study user attribute, so
optuna-dashboard lists them all and `hpstudy copy` carries them.

Studies written by an earlier version still read: a key kept elsewhere then (the heartbeat,
once the study *system* attribute `hpstudy:heartbeat`) is read there when the new key is
missing (`LEGACY_KEYS`). Stored values keep the form earlier versions wrote (the spec as JSON
text), so either version reads a study the other wrote.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import optuna

PREFIX = "hpstudy_"  # every study attribute's key: PREFIX + the field's name
HEARTBEAT_INTERVAL = 10  # seconds between a running trial's heartbeats
GRACE_PERIOD = 60  # seconds without a heartbeat after which a RUNNING trial counts as dead
# Where an earlier version kept a field: its name -> that version's study system attribute.
LEGACY_KEYS = {"heartbeat": "hpstudy:heartbeat"}


class _HasUserAttrs(Protocol):
    @property
    def user_attrs(self) -> dict[str, Any]: ...


class _Writable(Protocol):
    def set_user_attr(self, key: str, value: Any) -> None: ...


@dataclasses.dataclass(frozen=True)
class Heartbeat:
    """How often a study's running trials beat, and how long a silent one lives (seconds).

    Stored with the study, so every worker that joins uses the same.
    """

    interval: int = HEARTBEAT_INTERVAL
    grace: int = GRACE_PERIOD

    def to_dict(self) -> dict[str, int]:
        return {"interval": self.interval, "grace": self.grace}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Heartbeat:
        """The stored form; a missing value reads as its default."""
        default = cls()
        return cls(
            int(data.get("interval", default.interval)), int(data.get("grace", default.grace))
        )


@dataclasses.dataclass(frozen=True)
class StudyAttrs:
    """The user attributes hpstudy writes to a study and reads back; None where not written."""

    # the spec as `storable_spec` makes it (the storage URL without its password); stored as
    # JSON text, which a reader of an older version and the CLI's `status` parse
    spec: dict[str, Any] | None = None
    # the user's model factory and data loader by role ("model", "loader"): ref, source, sha256
    code: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    heartbeat: Heartbeat | None = None  # None: the defaults
    # `[space.lr] auto = true`: each optimiser's range test, as `trainer.LRRange.to_dict()`
    lr_range: dict[str, dict[str, Any]] | None = None
    # `hpstudy ablate`: {"factors": [...], "rows": [each `CellRow.to_dict()`, best first]}
    ablation: dict[str, Any] | None = None
    # the last `hpstudy learning-curve`: {"trial", "points", "label", "numbers", "sentence"}
    learning_curve: dict[str, Any] | None = None
    # `strip_stored_passwords` has cleaned the study once: later runs skip its scan
    passwords_stripped: bool = False

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @staticmethod
    def key(name: str) -> str:
        """The attribute key of field `name`.

        Raises:
            KeyError: for a name that is not a `StudyAttrs` field.
        """
        if name not in StudyAttrs.names():
            raise KeyError(f"'{name}' is not a StudyAttrs field")
        return PREFIX + name

    @classmethod
    def from_attrs(
        cls, user_attrs: Mapping[str, Any], system_attrs: Mapping[str, Any] | None = None
    ) -> StudyAttrs:
        """The record of a study's user attributes, and of its system attributes where an
        earlier version kept a field; a missing key reads as its default."""
        values: dict[str, Any] = {}
        for name in cls.names():
            raw = user_attrs.get(PREFIX + name)
            if raw is None and name in LEGACY_KEYS and system_attrs is not None:
                raw = system_attrs.get(LEGACY_KEYS[name])
            if raw is not None:
                decode = _DECODE.get(name)
                values[name] = raw if decode is None else decode(raw)
        return cls(**values)

    @classmethod
    def of(cls, study: _HasUserAttrs) -> StudyAttrs:
        """The record of a study (`optuna.Study`) from its user attributes.

        A field an earlier version kept among the system attributes, which an
        `optuna.Study` does not show, reads as its default here; `read` finds it.
        """
        return cls.from_attrs(study.user_attrs)

    @classmethod
    def read(cls, storage: optuna.storages.BaseStorage, study_id: int) -> StudyAttrs:
        """The record of study `study_id`, fields an earlier version kept included."""
        return cls.from_attrs(
            storage.get_study_user_attrs(study_id), storage.get_study_system_attrs(study_id)
        )


_DECODE: dict[str, Callable[[Any], Any]] = {"spec": json.loads, "heartbeat": Heartbeat.from_dict}
_ENCODE: dict[str, Callable[[Any], Any]] = {"spec": json.dumps, "heartbeat": Heartbeat.to_dict}


def write_study_attrs(study: _Writable, **values: Any) -> None:
    """Sets user attributes of a study (`optuna.Study`) by their `StudyAttrs` names.

    Raises:
        KeyError: for a name that is not a `StudyAttrs` field (a typo would silently store
            an attribute nobody reads).
    """
    for name, value in values.items():
        key = StudyAttrs.key(name)
        encode = _ENCODE.get(name)
        study.set_user_attr(key, value if encode is None or value is None else encode(value))


class StoredStudy:
    """A study by its storage and id, for `write_study_attrs` where no `optuna.Study` is at
    hand (a runner holding the storage only)."""

    def __init__(self, storage: optuna.storages.BaseStorage, study_id: int) -> None:
        self.storage, self.study_id = storage, study_id

    def set_user_attr(self, key: str, value: Any) -> None:
        self.storage.set_study_user_attr(self.study_id, key, value)
