"""Learning-curve extrapolation: a trial's final best value predicted from its partial curve.

The model follows Domhan et al. (2015) in spirit, made small enough to run inside a worker at
every rung (well under a millisecond for 20 epochs): an ensemble of parametric curve families,
each with its asymptote `c` and scale `a` fitted by least squares and its shape `alpha` taken
from a fixed grid, so that every member is a closed-form linear fit:

- pow: `c + a * t**-alpha` (pow3),
- exp: `c + a * exp(-alpha * t)`,
- ilog: `c + a / log(t + alpha)` (Domhan's ilog2 with a shift),
- flat: `c` (no further progress).

Model selection keeps a trial's *best* value over its epochs, and a loss curve may turn up late
(overfitting), so the members are fitted to the running best (the running minimum of a loss),
which never turns up, with `a >= 0`. A member predicts the final best as the best so far less
its fitted further improvement between the last epoch seen and the horizon; the forecast is the
members' mixture, each weighted by its profile likelihood `(rss / n + floor) ** (-n / 2)`
(equal parameters: Bayesian model averaging under the BIC) and spread by its residual noise.
With two or three epochs every member fits exactly and the weights stay equal: the spread of
the shapes is then the prior's, which is what makes an early forecast honest about how little
it knows.

Values are losses (lower is better); a maximised metric is negated before it comes here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from scipy.special import ndtr

# The shape grids. Each family's grid spans slow to fast convergence; pow's lowest alpha is
# nearly log-linear, the slowest curve that still flattens.
_POW = np.geomspace(0.05, 4.0, 40)
_EXP = np.geomspace(0.01, 2.0, 40)
_ILOG = np.geomspace(1.0, 8.0, 8)
FAMILIES = ("pow", "exp", "ilog", "flat")


def _bases(steps: np.ndarray) -> np.ndarray:
    """(members, len(steps)): each non-flat member's basis at the steps (decreasing in t)."""
    t = steps[None, :]
    return np.concatenate(
        [
            t ** -_POW[:, None],
            np.exp(-_EXP[:, None] * t),
            1.0 / np.log(t + _ILOG[:, None]),
        ]
    )


MEMBERS = len(_POW) + len(_EXP) + len(_ILOG) + 1  # the last: flat


@dataclasses.dataclass(frozen=True)
class Forecast:
    """A predictive distribution of a trial's final best value: a mixture of normals."""

    means: np.ndarray  # (members,) each member's predicted final best
    scales: np.ndarray  # (members,) each member's standard deviation (residual noise)
    weights: np.ndarray  # (members,) summing to 1

    @property
    def mean(self) -> float:
        """The mixture's mean."""
        return float(self.weights @ self.means)

    def probability_below(self, value: float) -> float:
        """P(final best < value)."""
        z = (value - self.means) / np.maximum(self.scales, 1e-12)
        return float(self.weights @ ndtr(z))


def running_best(values: Sequence[float]) -> np.ndarray:
    """The best (lowest) value so far at each point."""
    return np.minimum.accumulate(np.asarray(values, dtype=float))


def forecast(
    values: Sequence[float],
    *,
    horizon: float,
    steps: Sequence[float] | None = None,
    noise: float = 0.0,
) -> Forecast:
    """The final best value's distribution at step `horizon`, from a partial curve.

    Args:
        values: the curve so far (a loss: lower is better), finite.
        horizon: the step whose best value is forecast (the last epoch); at or before the
            last step seen, the forecast is the best so far.
        steps: each value's step (e.g. its epoch, from 1); by default 1, 2, ...
        noise: a floor on each member's standard deviation, in the values' units.

    Raises:
        ValueError: no values, a non-finite value, steps of another length or not increasing
            and positive, or a negative noise.
    """
    y = np.asarray(values, dtype=float)
    t = np.arange(1.0, len(y) + 1) if steps is None else np.asarray(steps, dtype=float)
    if len(y) == 0 or not np.all(np.isfinite(y)):
        raise ValueError(f"values must be finite and not empty, got {values!r}")
    if t.shape != y.shape or np.any(np.diff(t) <= 0) or t[0] <= 0:
        raise ValueError(f"steps must be positive, increasing and one per value, got {steps!r}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    best = running_best(y)
    now = best[-1]
    if horizon <= t[-1] or len(y) == 1:
        one = np.ones(1)
        return Forecast(np.array([now]), np.array([noise]), one)
    # 1. Every member's least-squares fit of (c, a), in closed form, a >= 0.
    basis = _bases(t)
    centred = basis - basis.mean(axis=1, keepdims=True)
    target = best - best.mean()
    variance = np.einsum("ij,ij->i", centred, centred)
    a = np.maximum(centred @ target / np.maximum(variance, 1e-300), 0.0)
    residuals = target[None, :] - a[:, None] * centred
    rss = np.append(np.einsum("ij,ij->i", residuals, residuals), target @ target)
    # 2. Each member's further improvement from the last step to the horizon.
    ends = _bases(np.array([t[-1], float(horizon)]))
    gain = np.append(a * (ends[:, 0] - ends[:, 1]), 0.0)
    # 3. Weights by profile likelihood; a floor keeps exact fits of a few points comparable.
    n = len(y)
    scale = max(float(np.ptp(best)), abs(float(now)) * 1e-3, 1e-12)
    floor = (1e-3 * scale) ** 2
    log_weights = -0.5 * n * np.log(rss / n + floor)
    weights = np.exp(log_weights - log_weights.max())
    sigma = np.sqrt(rss / max(n - 2, 1) + noise**2)
    return Forecast(now - gain, sigma, weights / weights.sum())

