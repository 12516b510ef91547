"""What hpstudy keeps in a study's user attributes, as one typed record.

The runner writes the spec, the user's code identity and the heartbeat when a study starts;
later commands add the learning-rate range tests, an ablation's table and a learning curve
over the training-set size. `StudyAttrs` names every key once: each is `hpstudy_` and the
field's name (`hpstudy_spec`, `hpstudy_heartbeat`, ...), a study user attribute, so
optuna-dashboard lists them all and `hpstudy copy` carries them. Each field is a typed record
(`StudySpec`, `trainer.LRRange`, `AblationTable`, `LearningCurve`), written with its
`to_dict` and read back with its `from_dict` here, so no reader looks inside a stored dict.

Studies written by an earlier version still read: a key kept elsewhere then (the heartbeat,
once the study *system* attribute `hpstudy:heartbeat`) is read there when the new key is
missing (`LEGACY_KEYS`). Stored values keep the form earlier versions wrote (the spec as JSON
text), so either version reads a study the other wrote.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import optuna

from studies.spec import AblationTable, LearningCurve, StudySpec
from studies.storage._urls import public_url
from trainer import LRRange

PREFIX = "hpstudy_"  # every study attribute's key: PREFIX + the field's name
HEARTBEAT_INTERVAL = 10  # seconds between a running trial's heartbeats
GRACE_PERIOD = 60  # seconds without a heartbeat after which a RUNNING trial counts as dead
# Where an earlier version kept a field: its name -> that version's study system attribute.
LEGACY_KEYS = {"heartbeat": "hpstudy:heartbeat"}


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

    # the spec the study runs; stored as `storable_spec` makes it (the storage URL without
    # its password), as JSON text, which a reader of an older version parses; read back
    # validated, with that URL
    spec: StudySpec | None = None
    # the user's model factory and data loader by role ("model", "loader"): ref, source, sha256
    code: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    heartbeat: Heartbeat | None = None  # None: the defaults
    # `[space.lr] auto = true`: each optimiser's range test, by optimiser
    lr_range: dict[str, LRRange] | None = None
    # `[train] fractions = "auto"`: the points inside the first epoch the run chose (() when
    # none paid; None before it chose)
    fractions: tuple[float, ...] | None = None
    ablation: AblationTable | None = None  # `hpstudy ablate`'s table, best cell first
    learning_curve: LearningCurve | None = None  # the last `hpstudy learning-curve`
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
        cls,
        user_attrs: Mapping[str, Any],
        system_attrs: Mapping[str, Any] | None = None,
        *,
        study: str = "",
        fields: Iterable[str] | None = None,
    ) -> StudyAttrs:
        """The record of a study's user attributes, and of its system attributes where an
        earlier version kept a field; a missing key reads as its default.

        Args:
            study: the study's name, for the message of a stored spec that does not load.
            fields: read only these fields (the others keep their defaults): a reader of the
                heartbeat does not fail on a stored spec this version refuses.

        Raises:
            SpecError: for a stored spec that this version does not accept, naming the study.
            KeyError: for a name in `fields` that is not a field.
        """
        names = cls.names() if fields is None else tuple(fields)
        for name in names:
            cls.key(name)  # a typo would silently read the default
        values: dict[str, Any] = {}
        for name in names:
            raw = user_attrs.get(PREFIX + name)
            if raw is None and name in LEGACY_KEYS and system_attrs is not None:
                raw = system_attrs.get(LEGACY_KEYS[name])
            if raw is None:
                continue
            if name == "spec":
                values[name] = _decode_spec(raw, study)
            else:
                decode = _DECODE.get(name)
                values[name] = raw if decode is None else decode(raw)
        return cls(**values)

    @classmethod
    def of(cls, study: optuna.Study, *fields: str) -> StudyAttrs:
        """The record of a study from its user attributes; with `fields`, only those.

        A field an earlier version kept among the system attributes, which an
        `optuna.Study` does not show, reads as its default here; `read` finds it.
        """
        return cls.from_attrs(study.user_attrs, study=study.study_name, fields=fields or None)

    @classmethod
    def read(cls, storage: optuna.storages.BaseStorage, study_id: int, *fields: str) -> StudyAttrs:
        """The record of study `study_id`, fields an earlier version kept included; with
        `fields`, only those."""
        return cls.from_attrs(
            storage.get_study_user_attrs(study_id),
            storage.get_study_system_attrs(study_id),
            study=storage.get_study_name_from_id(study_id),
            fields=fields or None,
        )


def storable_spec(spec: StudySpec) -> dict[str, Any]:
    """The spec as the study keeps it: its storage URL without the password.

    Everyone who reads the database (optuna-dashboard, `hpstudy copy`) sees study attributes,
    and a worker is given the URL anyway, so the stored one needs no password.
    """
    data = spec.to_dict()
    data["study"]["storage"] = public_url(spec.storage)
    return data


def _decode_spec(raw: Any, study: str) -> StudySpec:
    """The stored spec (JSON text), validated as a spec file is."""
    source = f"the spec stored with '{study}'" if study else "the spec stored with the study"
    return StudySpec.from_dict(json.loads(raw), source=source)


def _ranges(raw: Mapping[str, Any]) -> dict[str, LRRange]:
    return {str(name): LRRange.from_dict(found) for name, found in raw.items()}


_DECODE: dict[str, Callable[[Any], Any]] = {
    "heartbeat": Heartbeat.from_dict,
    "lr_range": _ranges,
    "fractions": lambda raw: tuple(float(f) for f in raw),
    "ablation": AblationTable.from_dict,
    "learning_curve": LearningCurve.from_dict,
}
_ENCODE: dict[str, Callable[[Any], Any]] = {
    "spec": lambda spec: json.dumps(storable_spec(spec)),
    "heartbeat": Heartbeat.to_dict,
    "lr_range": lambda ranges: {name: found.to_dict() for name, found in ranges.items()},
    "fractions": list,
    "ablation": AblationTable.to_dict,
    "learning_curve": LearningCurve.to_dict,
}


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
