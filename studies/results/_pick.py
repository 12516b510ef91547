"""Which trial a reading of a study takes: trial N, the best, or the best meeting a condition.

The rules are the API's (`export`, `reproduce`, `learning_curve`, `report` take `trial` and,
for export, `pick`), and so are the words of their errors: they name those parameters, which
the command line says as its flags (`studies.ParameterError`). The ranking itself is the
storage's (`studies.storage.finished_trials`).
"""

from __future__ import annotations

import math

import optuna

from studies._errors import ParameterError, StudyError, did_you_mean
from studies.spec import MEASURES, parse_condition
from studies.storage import TrialAttrs, feasible, finished_trials, pareto_front


def best_trial(study: optuna.Study, number: int | None = None) -> optuna.trial.FrozenTrial:
    """Trial `number`, or the best complete trial.

    Raises:
        StudyError: for an unknown trial number.
        ParameterError: for a study with no complete trial (or none that meets its
            constraints) or several objectives, saying to choose one with `trial`.
    """
    trials = study.get_trials(deepcopy=False)
    if number is not None:
        for trial in trials:
            if trial.number == number:
                return trial
        raise StudyError(
            f"study '{study.study_name}' has no trial {number} "
            f"(its trials are numbered 0 to {len(trials) - 1})"
            if trials
            else f"study '{study.study_name}' has no trials yet"
        )
    done = finished_trials(study)
    if not done:
        raise ParameterError(
            f"study '{study.study_name}' has no finished trial yet; run it first, or choose a "
            f"trial with `trial=N`"
        )
    if len(study.directions) > 1:
        raise ParameterError(front_choice(study))
    if not feasible(done[0]):
        raise ParameterError(
            f"study '{study.study_name}' has no complete trial that meets its constraints; "
            f"choose one with `trial=N` (hpstudy trials {study.study_name} lists them)"
        )
    return done[0]


def picked_trial(study: optuna.Study, condition: str) -> optuna.trial.FrozenTrial:
    """The best trial by the first objective among those that meet `condition`
    ("params<=50000", several joined by commas): of a multi-objective study's Pareto front,
    of a single-objective study's feasible complete trials. A condition names an objective or
    a measured property (`studies.spec.MEASURES`).

    Raises:
        ParameterError: for a condition that does not parse or names something the trials do
            not hold, or when no candidate meets it (listing the candidates).
    """
    parsed = parse_condition(condition)
    if isinstance(parsed, str):
        raise ParameterError(f"`pick={condition!r}`: {parsed}")
    names = list(study.metric_names or ["value"])
    several = len(study.directions) > 1
    candidates = (
        pareto_front(study) if several else [t for t in finished_trials(study) if feasible(t)]
    )
    known = sorted({*names, *MEASURES})
    for bound in parsed:
        if bound.name not in known:
            raise ParameterError(
                f"`pick={condition!r}`: '{bound.name}' is neither an objective of study "
                f"'{study.study_name}' nor a measured property{did_you_mean(bound.name, known)}; "
                f"choose among: {', '.join(known)}"
            )

    def quantity(trial: optuna.trial.FrozenTrial, name: str) -> float:
        if name in names and trial.values is not None:
            return float(trial.values[names.index(name)])
        measured = TrialAttrs.of(trial).measured or {}
        return float(measured.get(name, math.nan))

    meeting = [t for t in candidates if all(b.holds(quantity(t, b.name)) for b in parsed)]
    if not meeting:
        where = "on the Pareto front" if several else "among the feasible complete trials"
        raise ParameterError(
            f"no trial {where} of study '{study.study_name}' meets {condition!r}. "
            + (front_choice(study, pick=True) if several else "Loosen it or choose `trial=N`.")
        )
    return meeting[0]  # both lists come best first by the first objective


def front_choice(study: optuna.Study, *, pick: bool = False) -> str:
    """The message that asks which trial of a multi-objective study's front to take, naming
    the parameters as a `ParameterError` does.

    Args:
        pick: also offer `pick` (export takes it).
    """
    front = pareto_front(study)
    names = study.metric_names or [f"value{i}" for i in range(len(study.directions))]
    lines = [
        f"  trial {t.number}: "
        + ", ".join(f"{n} {v:.6g}" for n, v in zip(names, t.values or [], strict=False))
        for t in front
    ]
    shown = "\n".join(lines) if lines else "  (empty: no complete trial meets the constraints)"
    offer = (
        f' or with `pick="{names[-1]}<=NUMBER"` (the best {names[0]} among the front trials '
        f"that meet it)"
        if pick
        else ""
    )
    return (
        f"study '{study.study_name}' has {len(study.directions)} objectives and no single "
        f"best trial; choose one of its Pareto front with `trial=N`{offer}:\n{shown}"
    )
