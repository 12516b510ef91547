"""Learning-curve extrapolation: a trial's final best value predicted from its partial curve.

The model follows Domhan et al. (2015) in spirit, made small enough to run inside a worker at
every rung (about a millisecond for 20 epochs): an ensemble of parametric curve families, each
with its asymptote `c` and scale `a >= 0` fitted by least squares and its shape `alpha` taken
from a fixed grid, so that every member is a closed-form linear fit:

- pow: `c + a * t**-alpha` (pow3),
- exp: `c + a * exp(-alpha * t)`,
- ilog: `c + a / log(t + alpha)` (Domhan's ilog2 with a shift),
- flat: `c` (no further progress).

Model selection keeps a trial's *best* value over its epochs, and dev losses are noisy (the
best of a curve is often a lucky dip late on) and may turn up late (overfitting). So a member
is a trend (its fit) plus independent normal noise at each epoch with its residual standard
deviation, and the final best is the lowest of the best so far and the noisy values still to
come: P(final best < v) = 1 - prod over the steps to come of P(value >= v). A curve that turns
up fits the decreasing families badly: their noise grows, which keeps the forecast modest
about it. The forecast is the members' mixture, each weighted by its profile likelihood
`(rss / n + floor) ** (-n / 2)` (equal parameters: Bayesian model averaging under the BIC).
With three or four epochs many shapes fit about as well, and their spread is the forecast's
doubt; fewer than three give no noise estimate, and no forecast.

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
    """A predictive distribution of a trial's final best value.

    Each member is a trend with independent normal noise around it at every future step; the
    final best is the lowest of the best so far and the future steps' noisy values.
    """

    best: float  # the best value so far
    trends: np.ndarray  # (members, future steps) each member's trend at the steps to come
    scales: np.ndarray  # (members,) each member's noise (residual standard deviation)
    weights: np.ndarray  # (members,) summing to 1

    @property
    def means(self) -> np.ndarray:
        """(members,) each member's trend at the horizon (the best so far when it is past)."""
        if self.trends.shape[1] == 0:
            return np.full(len(self.weights), self.best)
        return self.trends[:, -1]

    @property
    def mean(self) -> float:
        """The mixture's trend at the horizon."""
        return float(self.weights @ self.means)

    def clipped(self, lowest: float) -> Forecast:
        """The same forecast with no trend below `lowest` (the best the metric can reach)."""
        return dataclasses.replace(self, trends=self.trends.clip(min=lowest))

    def probability_below(self, value: float) -> float:
        """P(final best < value)."""
        if self.best < value:
            return 1.0
        z = (value - self.trends) / np.maximum(self.scales, 1e-12)[:, None]
        above = np.prod(1.0 - ndtr(z), axis=1)  # every future step stays at or above value
        return float(self.weights @ (1.0 - above))


MIN_VALUES = 3  # fewer give no estimate of the noise, and no forecast
NOISE_FLOOR = 1e-3  # the least noise, as a share of the curve's range


def forecast(
    values: Sequence[float],
    *,
    horizon: int,
    steps: Sequence[float] | None = None,
) -> Forecast:
    """The final best value's distribution at step `horizon`, from a partial curve.

    Args:
        values: the curve so far (a loss: lower is better), finite, at least `MIN_VALUES`.
        horizon: the last step (epoch); the steps after the last one seen up to it are
            forecast, each a step of 1.
        steps: each value's step (e.g. its epoch, from 1); by default 1, 2, ...

    Raises:
        ValueError: fewer than `MIN_VALUES` values, a non-finite value, steps of another
            length or not increasing and positive.
    """
    y = np.asarray(values, dtype=float)
    t = np.arange(1.0, len(y) + 1) if steps is None else np.asarray(steps, dtype=float)
    if len(y) < MIN_VALUES or not np.all(np.isfinite(y)):
        raise ValueError(f"values must be {MIN_VALUES} or more finite numbers, got {values!r}")
    if t.shape != y.shape or np.any(np.diff(t) <= 0) or t[0] <= 0:
        raise ValueError(f"steps must be positive, increasing and one per value, got {steps!r}")
    n, now = len(y), float(y.min())
    future = np.arange(t[-1] + 1, max(horizon, t[-1]) + 1)
    # 1. Every member's least-squares fit of (c, a), in closed form, a >= 0.
    basis = _bases(t)
    centred = basis - basis.mean(axis=1, keepdims=True)
    target = y - y.mean()
    variance = np.einsum("ij,ij->i", centred, centred)
    a = np.maximum(centred @ target / np.maximum(variance, 1e-300), 0.0)
    residuals = target[None, :] - a[:, None] * centred
    rss = np.append(np.einsum("ij,ij->i", residuals, residuals), target @ target)
    # 2. Each member's trend at the steps to come: c + a * basis.
    c = y.mean() - a * basis.mean(axis=1)
    trends = np.vstack([c[:, None] + a[:, None] * _bases(future), np.full(len(future), y.mean())])
    # 3. Weights by profile likelihood; a floor keeps exact fits comparable.
    scale = max(float(np.ptp(y)), abs(now) * 1e-3, 1e-12)
    floor = (NOISE_FLOOR * scale) ** 2
    log_weights = -0.5 * n * np.log(rss / n + floor)
    weights = np.exp(log_weights - log_weights.max())
    sigma = np.sqrt(rss / max(n - 2, 1) + floor)
    return Forecast(now, trends, sigma, weights / weights.sum())
