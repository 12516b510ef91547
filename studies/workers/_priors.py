"""Priors: a new study's first trials come from the best trials of the user's earlier studies.

When `hpstudy run` starts a study that has no trials yet and whose spec keeps `[study] priors
= true` (the default), the study's own storage is searched for earlier studies of the same
task, and the best configurations found there are enqueued first.

*The same task* is the same data, the same kind of task and the same metric; the network and
the space may differ (`mnist-cnn` after `mnist-mlp` counts):

- the data: a built-in data set (`mnist`, `digits`) or data kept in the database
  (`studies.run(data=...)`, named by its hash) by its name; a file, a folder or a loader by
  the content fingerprint that every trial records (computed here by loading the data once,
  only when such a study exists);
- `[train]` task (classification or regression) and target columns;
- `[study]` metric, one objective on both sides (several objectives have no one best region).

*An earlier study* is any other hpstudy study in the storage with at least `MIN_COMPLETE`
complete trials, finished or still running (a study with no trial budget never finishes).

*What carries over*: each parameter of the new space that the earlier study searched too,
when its value in an earlier trial is valid here (in its range, among its choices, its
condition holding); the sampler draws the rest (`search_space.project_point`). An earlier
study's fixed `[train]` values say nothing about where good values lie: they are not carried.
The best `PRIOR_TRIALS` distinct configurations over all those studies, by the metric, are
enqueued after the spec's own `enqueue` points, at most as many as the trial budget leaves.
Each such trial records the study and trial it came from (`TrialAttrs.prior`); `hpstudy
trials` shows it.

Once per study: the first `hpstudy run` of a study claims the step (`claim_once`), so runs
started at the same moment on SQLite or PostgreSQL enqueue the priors once, and a resumed
study that already has trials gets none.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from typing import Any

import optuna

from search_space import project_point
from studies._errors import StudyError
from studies.spec import StudySpec
from studies.storage import (
    StudyAttrs,
    TrialAttrs,
    claim_once,
    create_engine,
    enqueue_once,
)
from trainer import (
    BUILTIN_DATASETS,
    ConfigError,
    DataUnavailableError,
    UserCodeError,
    is_kept_reference,
)

PRIOR_TRIALS = 3  # configurations enqueued from earlier studies
MIN_COMPLETE = 3  # complete trials an earlier study needs to count
CLAIM = "priors"  # the study's once-only claim (not a 64-digit hash: no clash with a point)


@dataclasses.dataclass(frozen=True)
class Prior:
    """One configuration from an earlier study, as the new study enqueues it."""

    values: dict[str, Any]  # the part valid in the new space, encoded for `enqueue_trial`
    study: str  # the earlier study
    trial: int  # its trial number there
    value: float  # its metric there

    @property
    def source(self) -> str:
        return f"study {self.study} #{self.trial}"

    def record(self) -> dict[str, Any]:
        """What the new trial keeps as its `TrialAttrs.prior`."""
        return {"study": self.study, "trial": self.trial}


def enqueue_priors(
    spec: StudySpec,
    study: optuna.Study,
    storage: optuna.storages.BaseStorage,
    *,
    fresh: bool,
    limit: int = PRIOR_TRIALS,
) -> list[Prior]:
    """Enqueues the best configurations of earlier studies of the same task, once per study.

    Args:
        spec: the new study's spec; nothing happens when its `priors` is false, for an
            ablation (its grid is enqueued) or a grid sampler (it takes no partial points).
        study: the new study.
        storage: its storage, searched for earlier studies.
        fresh: whether the study had no trials when this run found it; a resumed one gets
            no priors.
        limit: at most this many configurations (and no more than the budget leaves).

    Returns:
        The priors this call enqueued (none when another run claimed the step first).
    """
    if not spec.priors or not fresh or spec.ablation is not None:
        return []
    if spec.sampler.get("name") == "grid" or spec.multi:
        return []
    if spec.n_trials is not None:
        waiting = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
        limit = min(limit, spec.n_trials - len(waiting))
    study_id = storage.get_study_id_from_name(spec.name)
    engine = create_engine(spec.storage)
    try:
        if limit <= 0 or not claim_once(engine, study_id, CLAIM, source="priors"):
            return []
        return [
            prior
            for prior in find_priors(spec, storage, limit=limit)
            if enqueue_once(
                study, engine, study_id, prior.values, source=prior.source, prior=prior.record()
            )
        ]
    finally:
        engine.dispose()


def find_priors(
    spec: StudySpec, storage: optuna.storages.BaseStorage, *, limit: int = PRIOR_TRIALS
) -> list[Prior]:
    """The best `limit` distinct configurations of earlier studies of `spec`'s task, projected
    onto its space, best first (see the module)."""
    sign = -1.0 if spec.direction == "maximize" else 1.0
    found = sorted(_candidates(spec, storage), key=lambda p: (sign * p.value, p.study, p.trial))
    chosen: list[Prior] = []
    for prior in found:
        if prior.values and all(prior.values != other.values for other in chosen):
            chosen.append(prior)
        if len(chosen) >= limit:
            break
    return chosen


def _candidates(spec: StudySpec, storage: optuna.storages.BaseStorage) -> Iterator[Prior]:
    """Every complete trial of every earlier study of the same task, projected."""
    fingerprint = _Lazy(lambda: data_fingerprint(spec))
    base = spec.train.to_dict()
    for frozen in storage.get_all_studies():
        if frozen.study_name == spec.name or len(frozen.directions) != 1:
            continue
        try:
            earlier = StudyAttrs.from_attrs(
                frozen.user_attrs, frozen.system_attrs, study=frozen.study_name, fields=("spec",)
            ).spec
        except StudyError:  # a spec this version refuses: not comparable
            continue
        if earlier is None or not same_task(spec, earlier):
            continue
        done = optuna.load_study(study_name=frozen.study_name, storage=storage).get_trials(
            deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)
        )
        if len(done) < MIN_COMPLETE:
            continue
        searched = set(earlier.space.names)
        if not _named_data(spec) and (
            fingerprint.get() is None
            or all(TrialAttrs.of(t).data_fingerprint != fingerprint.get() for t in done)
        ):
            continue
        for trial in done:
            if trial.value is None or not math.isfinite(trial.value):
                continue
            config = TrialAttrs.of(trial).config or trial.params
            values = project_point(spec.space, config, base=base, only=searched)
            yield Prior(values, frozen.study_name, trial.number, float(trial.value))


def same_task(new: StudySpec, earlier: StudySpec) -> bool:
    """Whether `earlier` studied `new`'s task as far as the specs tell: data (by name where
    the name says it all), task kind, target and metric, one objective each."""
    a, b = new.train, earlier.train
    if new.multi or earlier.multi or new.metric != earlier.metric:
        return False
    if a.task != b.task or tuple(a.target) != tuple(b.target):
        return False
    return not _named_data(new) or a.dataset == b.dataset


def _named_data(spec: StudySpec) -> bool:
    """Whether the data's name alone tells its content: built in, or kept by its hash."""
    dataset = spec.train.dataset
    return dataset in BUILTIN_DATASETS or is_kept_reference(dataset)


def data_fingerprint(spec: StudySpec) -> str | None:
    """The content fingerprint of `spec`'s data (loaded once, on the CPU); None when it cannot
    be loaded here (the checks before the study said why, if it matters)."""
    from studies.workers._preflight import one_sample
    from trainer import load_data  # torch: only for a file, folder or loader

    try:
        data = load_data(one_sample(spec), device="cpu", search_path=spec.search_path)
    except (UserCodeError, DataUnavailableError, ConfigError, OSError, ValueError):
        return None  # no priors: the checks before the study say what is wrong, if anything
    found = data.identity.get("fingerprint")
    return str(found) if found else None


class _Lazy:
    """A value computed on first use (the data's fingerprint: only when a study needs it)."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make, self.done, self.value = make, False, None

    def get(self) -> Any:
        if not self.done:
            self.value, self.done = self.make(), True
        return self.value
