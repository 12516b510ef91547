"""How a run ended, as `fit` and `cross_fit` report it."""

from __future__ import annotations

import enum


class Status(enum.StrEnum):
    """A run's status: running, or why it ended. Members are strings ("completed", ...), so
    they print, compare and serialise as the plain strings earlier versions used."""

    RUNNING = "running"
    COMPLETED = "completed"  # every configured epoch ran
    EARLY_STOPPED = "early_stopped"  # `patience` epochs without a better monitored metric
    DIVERGED = "diverged"  # a non-finite loss
