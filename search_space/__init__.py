"""Declarative search spaces, turned into ``trial.suggest_*`` calls.

Parameter names are `TrainConfig` field names. A study spec's ``[space]`` table holds one table
per parameter; ``type`` may be left out when the keys tell it (``choices``: categorical,
``value``: fixed, int ``low``/``high``: int, other bounds: float)::

    [space.lr]
    low = 1e-4
    high = 1.0
    log = true

    [space.optimizer]
    choices = ["sgd", "adam", "rmsprop"]

    [space.momentum]                          # only drawn when the optimiser uses it
    type = "float"
    low = 0.0
    high = 0.99
    when = { optimizer = ["sgd", "rmsprop"] }

    [space.hidden]                            # lists of ints are choices too
    choices = [[300, 100], [500, 300]]

    [space.epochs]
    low = 5
    high = 30
    step = 5

    [space.batch_norm]
    value = true

    [space.model_args.width]                  # an entry of a model factory's model_args
    low = 16
    high = 256
    log = true

    [space.model_args.depth]
    choices = [2, 3, 4]

    [space.model_args.skip]                   # conditions may name entries, flat or nested
    choices = [true, false]
    when = { "model_args.depth" = [3, 4] }    # or: when = { model_args = { depth = [3, 4] } }

Then::

    space = SearchSpace.from_dict(spec["space"], fields=trainer.field_names())
    params = suggest(trial, space, base=base_config.to_dict())  # {"model_args.width": 64, ...}
    config = base_config.replace(**nest(params, base=base_config.to_dict()))

The package needs Optuna but never torch, so specs can be checked without it.
"""

from __future__ import annotations

from search_space._errors import SpaceError
from search_space._names import GROUPS, nest
from search_space._params import PARAM_TYPES, Categorical, Fixed, Float, Int, Param, param_from_dict
from search_space._points import encode_point, project_point
from search_space._space import SearchSpace
from search_space._suggest import suggest

__all__ = [
    "GROUPS",
    "PARAM_TYPES",
    "Categorical",
    "Fixed",
    "Float",
    "Int",
    "Param",
    "SearchSpace",
    "SpaceError",
    "encode_point",
    "nest",
    "param_from_dict",
    "project_point",
    "suggest",
]
