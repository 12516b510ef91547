"""`hpstudy ablate`: the full grid of a few factors, several seeds per cell, as one study.

The ablation study is an ordinary study (its own name, `<spec>-ablation`), so workers,
resuming and the dashboard apply: its space is the factors' choices plus `repeat`, the index of
the seed (`trial_seed(study.seed, repeat)`, the same in every cell). Every cell and seed is
put in the study's queue (`enqueue`), which the worker storage hands out exactly once each
however many workers run (a grid sampler in parallel workers can draw one point twice and
miss another), without pruning, so every cell runs every seed to the end. Everything else is
the spec's `[train]` base.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from studies._errors import ParameterError
from studies.spec import REPEAT, StudySpec


def ablation_spec(spec: StudySpec, factors: Sequence[str], repeats: int) -> StudySpec:
    """The ablation study of `spec`'s categorical `factors`, `repeats` seeds per cell.

    Raises:
        SpecError: for an unknown factor, a factor that is not categorical or has one value,
            or fewer than two repeats; naming the spec and the factor.
    """
    data = spec.to_dict()
    space = {}
    for factor in factors:
        table = data["space"].get(factor)
        if table is not None:
            space[factor] = {k: v for k, v in table.items() if k != "when"}  # a grid: no conditions
    space[REPEAT] = {"choices": list(range(max(repeats, 1)))}
    names = list(space)
    points = [
        dict(zip(names, values, strict=True))
        for values in itertools.product(*(space[n].get("choices", [None]) for n in names))
    ]
    data["study"] = {
        **{k: v for k, v in data["study"].items() if k not in ("enqueue", "target", "timeout")},
        "name": f"{spec.name}-ablation",
        "sampler": {"name": "random"},  # unused: every point is enqueued
        "pruner": {"name": "none"},
        "n_trials": max(len(points), 1),
        "enqueue": points,
        "ablation": {"factors": list(factors), "repeats": repeats},
    }
    data["space"] = space
    if not factors:
        raise ParameterError("`factors`: name one or more categorical parameters of the space")
    return StudySpec.from_dict(data, source=f"{spec.source} (ablation of {', '.join(factors)})")
