"""Shared fixtures: the field names a space may use, as `trainer.field_names()` gives them."""

from __future__ import annotations

import pytest

# A copy, not an import: these tests must not need the trainer package (or torch).
FIELDS = (
    "lr",
    "momentum",
    "nesterov",
    "dropout",
    "weight_decay",
    "l1",
    "l1_ratio",
    "init",
    "optimizer",
    "schedule",
    "milestones",
    "step_size",
    "gamma",
    "plateau_factor",
    "plateau_patience",
    "batch_norm",
    "activation",
    "hidden",
    "channels",
    "batch_size",
    "epochs",
    "model",
    "model_args",
)


@pytest.fixture
def fields() -> tuple[str, ...]:
    return FIELDS
