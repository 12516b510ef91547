"""Creating, resuming and reading studies; the spec travels inside the study."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import optuna

from studies._errors import StudyError
from studies.spec import SpecError, StudySpec
from studies.storage._front import directions, feasible, losses, pareto_front
from studies.storage._study_attrs import Heartbeat, StoredStudy, StudyAttrs, write_study_attrs
from studies.storage._trial_attrs import TrialAttrs
from studies.storage._urls import open_storage, redact
from studies.storage._worker_storage import REFRESH, StaleCallback, WorkerStorage
from studies.storage._write_behind import FLUSH_INTERVAL

# The keys of the spec and the code, under their earlier names (the CLI reads the spec's).
SPEC_ATTR = StudyAttrs.key("spec")
CODE_ATTR = StudyAttrs.key("code")


def create_or_resume(
    spec: StudySpec,
    storage: optuna.storages.BaseStorage,
    *,
    code: Mapping[str, Mapping[str, str]] | None = None,
) -> optuna.Study:
    """Creates the study of `spec`, or loads it when it exists with the same train/space.

    A changed budget, timeout, sampler or pruner is taken over (stored); a changed `[train]`
    or `[space]` is refused, since its trials would not be comparable, and so is changed
    user code (a model factory or data loader whose file no longer hashes the same).

    Args:
        code: the identities ({"ref", "source", "sha256"}) of the user's model factory and
            data loader, by role ("model", "loader"), kept with the study.

    Raises:
        StudyError: when the stored study was made from a different train config, space or
            user code.
    """
    study = optuna.create_study(
        study_name=spec.name,
        storage=storage,
        directions=[optuna.study.StudyDirection[d.upper()] for d in spec.directions.values()],
        load_if_exists=True,
    )
    before = StudyAttrs.of(study).spec
    if before is not None:
        then, now = before.to_dict(), spec.to_dict()
        changed = [key for key in ("train", "space") if then[key] != now[key]]
        if changed:
            raise StudyError(
                f"study '{spec.name}' already exists in this storage with a different "
                f"[{'] and ['.join(changed)}]; its trials would not compare with new ones. "
                f"Give the spec a new study.name, or delete the study "
                f"(optuna delete-study --study-name {spec.name} --storage ...)."
            )
    stored_names = study.metric_names
    if stored_names is not None and len(stored_names) > 1 and stored_names != list(spec.directions):
        raise StudyError(
            f"study '{spec.name}' exists with the objectives {', '.join(stored_names)}, but the "
            f"spec's are {', '.join(spec.directions)}; their values would not compare: use a "
            f"new study.name"
        )
    stored_directions = [d.name.lower() for d in study.directions]
    if stored_directions != list(spec.directions.values()):
        raise StudyError(
            f"study '{spec.name}' exists and {' and '.join(stored_directions)}s, but the "
            f"spec's {' and '.join(spec.directions)} "
            f"{'is' if len(spec.directions) == 1 else 'are'} "
            f"{' and '.join(spec.directions.values())}d; use a new study.name"
        )
    if code:
        check_code(study, code)
        write_study_attrs(study, code={role: dict(ident) for role, ident in code.items()})
    write_study_attrs(study, spec=spec)
    with warnings.catch_warnings():  # "experimental since 3.2": a note for Optuna's users
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(spec.directions))  # optuna-dashboard labels its axes with it
    return study


def check_code(study: optuna.Study, code: Mapping[str, Mapping[str, str]]) -> None:
    """Refuses user code that differs from the code the study's trials ran.

    Raises:
        StudyError: naming the file, both hashes and the fix.
    """
    before = StudyAttrs.of(study, "code").code
    for role, now in code.items():
        then = before.get(role)
        if then is None or then.get("sha256") == now.get("sha256"):
            continue
        what = "model factory" if role == "model" else "data loader"
        raise StudyError(
            f"the {what} {now.get('ref')} differs from the code study '{study.study_name}' ran: "
            f"{now.get('source')} hashes {str(now.get('sha256'))[:12]} here, "
            f"{then.get('source')} hashed {str(then.get('sha256'))[:12]} when the study "
            f"started. Its trials would not compare with new ones: run with the study's file, "
            f"or give the spec a new study.name"
        )


def stored_spec(storage: optuna.storages.BaseStorage, name: str, *, url: str = "") -> StudySpec:
    """The spec stored with study `name`, with its storage set to `url` when given.

    Raises:
        StudyError: for an unknown study, or one not made by hpstudy.
    """
    study = load_study(storage, name, url=url)
    try:
        spec = StudyAttrs.of(study).spec
    except SpecError as exc:
        raise StudyError(str(exc)) from None
    if spec is None:
        raise StudyError(
            f"study '{name}' was not made by hpstudy (it has no stored spec); "
            f"start it with 'hpstudy run SPEC'"
        )
    return spec.replace(storage=url) if url else spec


def load_study(
    storage: optuna.storages.BaseStorage, name: str, *, url: str = "", **kwargs: Any
) -> optuna.Study:
    """Loads a study by name, or says which studies the storage holds.

    Raises:
        StudyError: for an unknown study name.
    """
    try:
        return optuna.load_study(study_name=name, storage=storage, **kwargs)
    except KeyError:
        names = sorted(s.study_name for s in optuna.get_all_study_summaries(storage))
        where = f" in {redact(url)}" if url else ""
        known = f"; studies there: {', '.join(names)}" if names else "; it holds no studies yet"
        raise StudyError(f"no study named '{name}'{where}{known}") from None


def finished_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Complete trials, best first: the Pareto front (of a single-objective study: the best
    feasible trial) by the first objective, then the other feasible trials, then those that
    break a constraint, each by the first objective.

    Among trials of equal value (on a small dev set many runs reach a dev loss of exactly 0),
    one the diagnosis calls diverged comes after the others, then the earlier trial first.
    """
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    front = {trial.number for trial in pareto_front(study)}
    ways = directions(study)

    def rank(trial: optuna.trial.FrozenTrial) -> tuple[bool, bool, float, bool, int]:
        diverged = "diverged" in TrialAttrs.of(trial).diagnosis
        first = losses(trial, ways)[0]
        return trial.number not in front, not feasible(trial), first, diverged, trial.number

    return sorted(done, key=rank)


def selection_maximized(study: optuna.Study) -> bool:
    """Whether the metric a study's model selection (and kept weights) ranks by is maximised:
    its spec's `metric` (which `StudySpec` sets to the first learning objective, else
    dev_loss); a study without a stored spec, by its first direction."""
    spec = StudyAttrs.of(study).spec
    if spec is None:
        return study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    return spec.direction == "maximize"


def store_heartbeat(
    storage: optuna.storages.BaseStorage, study_id: int, *, interval: int, grace: int
) -> None:
    """Records the study's heartbeat interval and grace period (seconds) for its workers.

    Heartbeats let a live study notice a dead worker: its RUNNING trial is failed after the
    grace period and re-queued.
    """
    if interval < 1 or grace <= interval:
        raise StudyError(
            f"the heartbeat needs interval >= 1 s and a longer grace period; got interval "
            f"{interval} s, grace {grace} s"
        )
    write_study_attrs(StoredStudy(storage, study_id), heartbeat=Heartbeat(interval, grace))


def stored_heartbeat(storage: optuna.storages.BaseStorage, study_id: int) -> tuple[int, int]:
    """The study's (heartbeat interval, grace period), or the defaults."""
    heartbeat = StudyAttrs.read(storage, study_id, "heartbeat").heartbeat or Heartbeat()
    return heartbeat.interval, heartbeat.grace


def open_worker_storage(
    url: str,
    name: str,
    *,
    heartbeat: int | None = None,
    grace: int | None = None,
    stale_trial_callback: StaleCallback | None = None,
    flush_interval: float = FLUSH_INTERVAL,
    refresh: float = REFRESH,
) -> WorkerStorage:
    """The storage of a worker of study `name`: built once, with the study's heartbeat.

    Args:
        heartbeat: seconds between heartbeats; None: the study's stored interval.
        grace: seconds of silence before a trial counts as dead; None: the study's.

    Raises:
        StudyError: for an unreachable storage or an unknown study.
    """
    reader = open_storage(url)
    try:
        study = load_study(reader, name, url=url)
        interval, period = stored_heartbeat(reader, reader.get_study_id_from_name(study.study_name))
    finally:
        reader.engine.dispose()
    return WorkerStorage(
        url,
        heartbeat_interval=heartbeat or interval,
        grace_period=grace or period,
        stale_trial_callback=stale_trial_callback,
        flush_interval=flush_interval,
        refresh=refresh,
    )
