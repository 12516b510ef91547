"""Learning-rate bounds from a range test, per optimiser, tied to the search.

`hpstudy lr-range SPEC` runs Smith's range test for each optimiser the space can choose and
proposes bounds. With `[space.lr] auto = true` the runner runs it once per study, before any
worker starts, and keeps the ranges with the study (`StudyAttrs.lr_range`); every
worker then searches the learning rate inside its optimiser's proposed bounds: the space's
`lr` becomes one parameter per optimiser, `lr_sgd`, `lr_adam`, ... (each drawn only with its
optimiser), which the objective hands to the trainer as `lr`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import optuna

from search_space import Categorical, Float, SearchSpace
from studies.spec import StudySpec
from studies.storage import StudyAttrs, write_study_attrs
from studies.workers._preflight import one_sample
from trainer import OPTIMIZER_NAMES, LRRange, field_names

MOMENTUM = 0.9  # the range test's momentum for sgd and rmsprop (Smith's setting)
PREFIX = "lr_"  # per-optimiser learning-rate parameters: lr_sgd, lr_adam, ...


def optimizers(spec: StudySpec) -> list[str]:
    """The optimisers a trial of the spec can use."""
    param = spec.space.get("optimizer")
    if isinstance(param, Categorical):
        return [str(choice) for choice in param.choices]
    return [spec.train.optimizer]


def run_range_tests(
    spec: StudySpec, *, steps: int = 300, echo: Callable[[str], None] = print
) -> dict[str, LRRange]:
    """The range test for each optimiser of the spec, on one sample of its space."""
    from trainer import load_data, lr_range_test

    sample = one_sample(spec).replace(device="cpu" if spec.train.device == "cpu" else "auto")
    data = load_data(sample, search_path=spec.search_path)
    low, high = spec.lr_bounds
    ranges = {}
    if sample.pretrain_epochs:
        echo(
            f"lr range tests: each pre-trains the sample's network first (pretrain_epochs = "
            f"{sample.pretrain_epochs}), so the bounds are for fine-tuning it"
        )
    for name in optimizers(spec):
        momentum = MOMENTUM if name in ("sgd", "rmsprop") else 0.0
        config = sample.replace(optimizer=name, momentum=momentum, nesterov=False, lr=low)
        found = lr_range_test(
            config,
            data,
            steps=steps,
            lr_min=min(low, 1e-7),
            lr_max=max(high, 10.0),
            search_path=spec.search_path,
        )
        ranges[name] = _clamped(found, low, high)
        echo(
            f"lr range test, {name}: loss lowest at lr {found.minimum:.3g}, steepest at "
            f"{found.steepest:.3g}: search [{ranges[name].low:.3g}, {ranges[name].high:.3g}]"
        )
    return ranges


def _clamped(found: LRRange, low: float, high: float) -> LRRange:
    """The proposal inside the spec's own [low, high] (what `auto` may choose from)."""
    import dataclasses

    new_low = min(max(found.low, low), high / 10)
    new_high = max(min(found.high, high), new_low * 10)
    return dataclasses.replace(found, low=new_low, high=new_high)


def stored_ranges(study: optuna.Study) -> dict[str, LRRange] | None:
    """The range tests kept with the study (`auto = true`); None before they ran."""
    return StudyAttrs.of(study, "lr_range").lr_range


def ensure_ranges(
    spec: StudySpec, study: optuna.Study, *, echo: Callable[[str], None] = print
) -> None:
    """Runs the range tests once per study and stores them with it (`auto = true` only)."""
    if not spec.lr_auto or StudyAttrs.of(study, "lr_range").lr_range is not None:
        return
    ranges = run_range_tests(spec, echo=echo)
    write_study_attrs(study, lr_range=ranges)


def searched_space(spec: StudySpec, ranges: Mapping[str, LRRange] | None) -> SearchSpace:
    """The space a worker searches: with `auto`, `lr` per optimiser inside its bounds."""
    if not spec.lr_auto or not ranges:
        return spec.space
    lr = spec.space["lr"]
    assert isinstance(lr, Float)
    params: dict[str, Any] = {}
    for name, param in spec.space.items():
        if name != "lr":
            params[name] = param
            continue
        if "optimizer" not in spec.space:  # one optimiser: lr keeps its name
            found = ranges[spec.train.optimizer]
            params["lr"] = Float(found.low, found.high, log=True, when=lr.when)
            continue
        for optimizer, found in ranges.items():
            when = {**(lr.when or {}), "optimizer": (optimizer,)}
            params[PREFIX + optimizer] = Float(found.low, found.high, log=True, when=when)
    return SearchSpace(params, fields=(*field_names(), *(PREFIX + o for o in ranges)))


def as_config_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """`lr_adam` (or any `lr_<optimiser>`) as the config's `lr`."""
    return {
        ("lr" if name.removeprefix(PREFIX) in OPTIMIZER_NAMES else name): value
        for name, value in params.items()
    }
