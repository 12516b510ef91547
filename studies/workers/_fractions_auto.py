"""`[train] fractions = "auto"`: points inside the first epoch chosen from measured costs.

`hpstudy run` times, once per study and before any worker starts, what training one epoch
and one dev evaluation cost (the probe `hpstudy plan` runs, with the threads each worker
gets), chooses fractions with `propose_fractions` (powers of 1 / reduction_factor whose
every rung keeps its dev evaluations within 10% of its cost), and keeps them with the study
(`StudyAttrs.fractions`). Every worker trains with them; a worker started by hand before a
run chose them trains whole epochs only, and says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import optuna

from studies.spec import StudySpec
from studies.storage import StudyAttrs, write_study_attrs
from studies.workers._rungs import propose_fractions, rung_costs, schedule_text

_log = logging.getLogger("hpstudy.worker")


def ensure_fractions(
    spec: StudySpec, study: optuna.Study, *, workers: int, echo: Callable[[str], None] = print
) -> None:
    """Chooses the fractions once per study and stores them with it (`"auto"` only)."""
    if not spec.fractions_auto or StudyAttrs.of(study, "fractions").fractions is not None:
        return
    # here, not at the top: the plan reaches the worker module, which imports this one
    from studies.workers._plan import probe_costs
    from studies.workers._processes import threads_per_worker

    probe = probe_costs(spec, threads=threads_per_worker(workers))
    fractions = propose_fractions(
        train=probe.train,
        dev=probe.dev,
        reduction_factor=max(int(spec.pruner.get("reduction_factor", 3)), 2),
        rows=probe.rows,
        batch_size=spec.train.batch_size,
    )
    write_study_attrs(study, fractions=fractions)
    if fractions:
        rungs = rung_costs(fractions, train=probe.train, dev=probe.dev)
        chosen = ", ".join(f"{f:g}" for f in fractions)
        echo(f"fractions = auto: [{chosen}] of the first epoch: {schedule_text(rungs)}")
    else:
        echo(
            f"fractions = auto: none; a dev evaluation ({probe.dev:.2f} s) costs too much "
            f"against training ({probe.train:.2f} s an epoch): whole epochs only"
        )


def with_fractions(spec: StudySpec, study: optuna.Study) -> StudySpec:
    """The spec a worker runs: with `"auto"`, its `train.fractions` set to the study's."""
    if not spec.fractions_auto:
        return spec
    chosen = StudyAttrs.of(study, "fractions").fractions
    if chosen is None:
        _log.warning(
            "fractions = auto: no run has chosen them for this study yet; whole epochs only"
        )
        return spec
    return spec.replace(train=spec.train.replace(fractions=list(chosen)))
