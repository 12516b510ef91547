"""Study specs: `[study]`, `[train]` and `[space.*]`, validated in full; samplers and pruners."""

from __future__ import annotations

from studies.spec._samplers import (
    PRUNERS,
    SAMPLERS,
    check_pruner,
    check_sampler,
    make_pruner,
    make_sampler,
)
from studies.spec._spec import (
    DEFAULT_STORAGE,
    METRICS,
    REPEAT,
    SpecError,
    StudySpec,
    builtin_specs,
    check_data,
    load_spec,
)

__all__ = [
    "DEFAULT_STORAGE",
    "METRICS",
    "PRUNERS",
    "REPEAT",
    "SAMPLERS",
    "SpecError",
    "StudySpec",
    "builtin_specs",
    "check_data",
    "check_pruner",
    "check_sampler",
    "load_spec",
    "make_pruner",
    "make_sampler",
]
