"""The worker start-up: what `studies.worker()` leaves alone in the caller's process, what
`worker_process()` sets up for a process that exists to run a worker, and Ctrl-C in both.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest

import studies
from studies.spec import StudySpec
from studies.storage import create_or_resume, open_storage
from studies.workers import worker_process
from tests.studies_tests.conftest import TINY

TrialState = optuna.trial.TrialState


def handlers() -> tuple[object, ...]:
    return (
        signal.getsignal(signal.SIGINT),
        signal.getsignal(signal.SIGTERM),
        tuple(logging.getLogger().handlers),
        tuple(logging.getLogger("hpstudy").handlers),
        logging.getLogger().level,
    )


def test_a_worker_called_from_python_leaves_logging_and_signal_handlers_as_they_were(
    tmp_path: Path, tiny_study: Callable[..., str]
) -> None:
    url = tiny_study(tmp_path, n_trials=1)
    before = handlers()
    summary = studies.worker(TINY, storage=url)
    assert summary.trials == 1
    assert handlers() == before


def test_a_worker_process_handles_signals_and_logs_inside_its_block_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HPSTUDY_PARENT_PID", raising=False)
    before = handlers()
    with worker_process() as stop:
        assert logging.getLogger("hpstudy").handlers
        os.kill(os.getpid(), signal.SIGTERM)  # the stop's now, not the default's
        assert stop.wait(5)
    assert handlers() == before


CTRL_C = """
import studies
summary = studies.worker({name!r}, storage={url!r})
print("interrupted" if summary.interrupted else "not interrupted", flush=True)
"""


@pytest.mark.slow
def test_ctrl_c_in_a_python_worker_requeues_its_running_trial(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    spec = {
        "study": {"name": "long", "n_trials": 1, "sampler": {"name": "random"}},
        "train": {"dataset": "digits", "hidden": [16], "epochs": 1000, "device": "cpu"},
        "space": {"lr": {"low": 0.01, "high": 0.1, "log": True}},
    }
    study = create_or_resume(StudySpec.from_dict(spec).replace(storage=url), open_storage(url))
    # Python's own SIGINT handler: a KeyboardInterrupt, as in a notebook.
    script = textwrap.dedent(CTRL_C.format(name="long", url=url))
    worker = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "HPSTUDY_THREADS": "1"},
    )
    try:
        running = _wait_running(study)
        worker.send_signal(signal.SIGINT)
        output, _ = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, output
    assert output.strip().endswith("interrupted") and "not interrupted" not in output, output
    trials = study.get_trials()
    stopped = next(t for t in trials if t.number == running)
    assert stopped.state == TrialState.FAIL
    assert stopped.user_attrs.get("fail_reason") == "interrupted"
    waiting = [t for t in trials if t.state == TrialState.WAITING]
    assert [t.system_attrs["failed_trial"] for t in waiting] == [running]


def _wait_running(study: optuna.Study, *, timeout: float = 120) -> int:
    """The number of the first running trial that has reported an epoch."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if trial.intermediate_values:
                return trial.number
        time.sleep(0.1)
    raise AssertionError("no trial started")
