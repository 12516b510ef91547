"""Study specs: `[study]`, `[train]` and `[space.*]`, validated in full; samplers and pruners."""

from __future__ import annotations

from studies.spec._extrapolate import Forecast, forecast
from studies.spec._extrapolating import ExtrapolatingPruner
from studies.spec._objectives import (
    CONSTRAINED_SAMPLERS,
    MEASURES,
    Constraint,
    Objectives,
    parse_condition,
    quantity_direction,
)
from studies.spec._pareto import as_losses, dominates, non_dominated, pareto_ranks
from studies.spec._ray import RAY_KEYS, RaySettings, ray_settings, read_ray
from studies.spec._records import AblationTable, CellRow, LearningCurve, SizePoint
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
    ENV_PREFIX,
    METRICS,
    REPEAT,
    STORAGE_ENV,
    STUDY,
    STUDY_KEYS,
    SpecError,
    StudyKey,
    StudySpec,
    builtin_specs,
    check_data,
    default_storage,
    load_spec,
    quiet_optuna,
)
from studies.spec._study_values import Ablation, Target

__all__ = [
    "CONSTRAINED_SAMPLERS",
    "DEFAULT_STORAGE",
    "ENV_PREFIX",
    "MEASURES",
    "METRICS",
    "PRUNERS",
    "RAY_KEYS",
    "REPEAT",
    "SAMPLERS",
    "STORAGE_ENV",
    "STUDY",
    "STUDY_KEYS",
    "Ablation",
    "AblationTable",
    "CellRow",
    "Constraint",
    "ExtrapolatingPruner",
    "Forecast",
    "LearningCurve",
    "Objectives",
    "RaySettings",
    "SizePoint",
    "SpecError",
    "StudyKey",
    "StudySpec",
    "Target",
    "as_losses",
    "builtin_specs",
    "check_data",
    "check_pruner",
    "check_sampler",
    "default_storage",
    "dominates",
    "forecast",
    "load_spec",
    "make_pruner",
    "make_sampler",
    "non_dominated",
    "pareto_ranks",
    "parse_condition",
    "quantity_direction",
    "quiet_optuna",
    "ray_settings",
    "read_ray",
]
