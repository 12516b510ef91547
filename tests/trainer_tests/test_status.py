"""`Status`: a run's status, the same strings `fit` reported before it was an enum."""

from __future__ import annotations

import pytest

from trainer import Status

BEFORE = {
    "RUNNING": "running",
    "COMPLETED": "completed",
    "EARLY_STOPPED": "early_stopped",
    "DIVERGED": "diverged",
}


@pytest.mark.parametrize("status", list(Status), ids=lambda s: s.name)
def test_each_status_is_the_string_reported_before(status: Status) -> None:
    assert status == f"{status}" == BEFORE[status.name]


def test_every_status_reported_before_is_a_member() -> None:
    assert {s.name for s in Status} == set(BEFORE)
