"""An exported config's `[provenance]` table, as one typed record.

`hpstudy export` writes it beside `[train]`; `hpstudy train` reads it back to train the file as
its trial did (thread count, model code, where relative paths resolve), and so do readers of
the file in Python. A field is None where the export had nothing to say (a built-in network
has no `model`; a trial of one network has no `folds`), and such a field is left out of the
file, since TOML has no null.

A file written by hand, or by an earlier version, reads too: a missing key is None, and a key
this version does not know is kept as it is (`extra`), so a reader never fails on it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class Provenance:
    """Where an exported config came from: enough to trace it back and to trust a rerun."""

    study: str | None = None  # the study's name
    trial: int | None = None  # the trial's number
    state: str | None = None  # "complete" or "pruned"
    metric: str | None = None  # the first objective's name
    direction: str | None = None  # "minimize" or "maximize", of the first objective
    value: float | None = None  # the first objective's value
    # every objective's value, by name (several objectives: where it stands on the front)
    objectives: dict[str, float] | None = None
    measured: dict[str, float] | None = None  # params, latency_ms, flops, train_seconds, ...
    seed: int | None = None  # the config's seed (the trial's)
    torch_threads: int | None = None  # CPU threads the trial trained on: `train` uses them
    best_epoch: int | None = None  # the epoch model selection kept
    epochs_run: int | None = None
    stop_reason: str | None = None  # why its run ended (`StopReason`'s string)
    diagnosis: tuple[str, ...] = ()  # the learning-curve labels
    storage: str | None = None  # the study's database URL, without a password
    exported: str | None = None  # when, ISO 8601 in UTC
    versions: dict[str, str] | None = None  # python and the packages that decide the numbers
    data: dict[str, Any] | None = None  # the data set's identity: name, fingerprint, sizes
    model: dict[str, str] | None = None  # a user factory's ref, source file and sha256
    transfer: dict[str, Any] | None = None  # init_from: the weights' source, what loaded, froze
    # a prior: the earlier study and trial its configuration came from ({"study", "trial"})
    prior: dict[str, Any] | None = None
    folder: str | None = None  # where the spec's relative paths resolved
    # a trial of several networks: their values, best epochs (-1: none) and the refit's epochs
    folds: dict[str, Any] | None = None
    weights: dict[str, str] | None = None  # `export --weights`: the file written and its sha256
    # keys this version does not know (a newer export), kept so that they are written again
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The `[provenance]` table: the fields that are set (TOML has no null)."""
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "extra" or value is None:
                continue
            out[field.name] = list(value) if field.name == "diagnosis" else value
        return {**out, **self.extra}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Provenance:
        """The record of a `[provenance]` table; missing keys read as None."""
        names = {field.name for field in dataclasses.fields(cls)} - {"extra"}
        values: dict[str, Any] = {key: data[key] for key in names if key in data}
        if "diagnosis" in values:
            values["diagnosis"] = tuple(values["diagnosis"])
        extra = {key: value for key, value in data.items() if key not in names}
        return cls(**values, extra=extra)
