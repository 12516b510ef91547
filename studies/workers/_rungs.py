"""Rungs cheaper than an epoch: what each scored point inside the first epoch costs, and
fractions chosen from measured costs.

With `[train] fractions` a trial scores the dev split at those shares of its first epoch
(`trainer.TrainConfig.fractions`), so successive halving can stop a hopeless configuration
after a fraction of an epoch. A point costs its share of the epoch's training plus a dev
evaluation, and the dev evaluations of the points before it: on a large dev split and a
small fraction the evaluations would be most of the cost. `propose_fractions` takes the
powers of the pruner's reduction factor (1/9, 1/3 for 3) deep enough that every rung's dev
evaluations stay at most `DEV_SHARE` of its cost.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

DEV_SHARE = 0.1  # the most of a rung's cost its dev evaluations may take in a proposal
MAX_DEPTH = 4  # a proposal goes down to reduction_factor ** -MAX_DEPTH of an epoch


@dataclasses.dataclass(frozen=True)
class Rung:
    """The cost of a trial that stops at one scored point of its first epoch."""

    fraction: float  # share of the training split trained when scored (1: the whole epoch)
    epochs: float  # its cost in epochs: training the whole split once plus one dev evaluation
    dev_share: float  # share of that cost spent on dev evaluations (this point's and earlier)


def rung_costs(fractions: Sequence[float], *, train: float, dev: float) -> list[Rung]:
    """The cost of stopping at each of `fractions` and at the end of the first epoch.

    Args:
        fractions: the config's points inside the first epoch.
        train: seconds to train one epoch of the training split.
        dev: seconds of one evaluation of the dev split.
    """
    epoch = train + dev
    out = []
    for scored, fraction in enumerate([*fractions, 1.0], start=1):
        evaluations = scored * dev
        cost = fraction * train + evaluations
        out.append(Rung(fraction, cost / epoch, evaluations / cost if cost > 0 else 0.0))
    return out


def propose_fractions(
    *,
    train: float,
    dev: float,
    reduction_factor: int,
    rows: int,
    batch_size: int,
    dev_share: float = DEV_SHARE,
) -> tuple[float, ...]:
    """The deepest powers of 1 / `reduction_factor` (1/81, 1/27, 1/9, 1/3 at most, for 3)
    whose every rung keeps its dev evaluations within `dev_share` of its cost and trains at
    least one batch of the `rows` training rows; () when even 1 / `reduction_factor` does not.

    Rounded to four decimals, as a spec would write them.
    """
    for depth in range(MAX_DEPTH, 0, -1):
        fractions = tuple(round(reduction_factor**-k, 4) for k in range(depth, 0, -1))
        if fractions[0] * rows < batch_size:
            continue
        rungs = rung_costs(fractions, train=train, dev=dev)[:-1]
        if all(rung.dev_share <= dev_share for rung in rungs):
            return fractions
    return ()


def schedule_text(rungs: Sequence[Rung]) -> str:
    """ "0.111 -> 0.12 epochs (dev 6%), 0.333 -> ..., the whole epoch -> 1.02 epochs"."""
    parts = []
    for rung in rungs:
        where = "the whole epoch" if rung.fraction >= 1.0 else f"{rung.fraction:.3g}"
        parts.append(f"{where} -> {rung.epochs:.3g} epochs (dev {rung.dev_share:.0%})")
    return ", ".join(parts)
