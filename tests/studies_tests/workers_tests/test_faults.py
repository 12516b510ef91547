"""Workers that die or are stopped: real `hpstudy run` processes on a real SQLite file.

SIGKILL one worker mid-trial: its trial is failed once its heartbeat is stale, re-queued with
the same params, and the retry resumes from the checkpoint in the database. SIGINT to
`hpstudy run`: it exits within seconds, nothing stays RUNNING, and a re-run resumes the
interrupted trials from their checkpoints.
"""

from __future__ import annotations

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
import sqlalchemy as sa

from studies.storage import WORKER_ATTR, CheckpointTable, chain_root, open_storage

TrialState = optuna.trial.TrialState
NAME = "faults"
EPOCHS = 60  # long enough to be caught mid-trial; digits epochs take tens of milliseconds


def write_spec(folder: Path, *, n_trials: int, epochs: int = EPOCHS) -> Path:
    path = folder / "spec.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [study]
            name = "{NAME}"
            storage = "sqlite:///{folder / "study.db"}"
            n_trials = {n_trials}
            seed = 1
            sampler = {{ name = "random" }}
            pruner = "none"

            [train]
            dataset = "digits"
            model = "mlp"
            hidden = [32]
            epochs = {epochs}
            batch_size = 16

            [space.lr]
            low = 0.01
            high = 0.1
            log = true
            """
        )
    )
    return path


def start_run(spec: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "studies", "run", str(spec), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=spec.parent,
    )


def wait_for(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def load(spec: Path) -> optuna.Study:
    storage = open_storage(f"sqlite:///{spec.parent / 'study.db'}")
    return optuna.load_study(study_name=NAME, storage=storage)


def checkpoint_epochs(spec: Path) -> dict[int, int]:
    """Root trial -> finished epochs of its stored checkpoint."""
    engine = sa.create_engine(f"sqlite:///{spec.parent / 'study.db'}")
    try:
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table("hpstudy_checkpoints"):
                return {}
            rows = connection.execute(sa.text("SELECT root_trial, epochs FROM hpstudy_checkpoints"))
            return {int(root): int(epochs) for root, epochs in rows}
    finally:
        engine.dispose()


def finish(process: subprocess.Popen[str], timeout: float) -> str:
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        raise AssertionError(f"hpstudy run did not finish:\n{output}") from None
    return output


@pytest.mark.slow
def test_killed_workers_trial_is_failed_requeued_and_resumed_from_its_checkpoint(
    tmp_path: Path,
) -> None:
    spec = write_spec(tmp_path, n_trials=2)
    run = start_run(spec, "--workers", "2", "--heartbeat", "1", "--grace", "3")
    try:
        wait_for(
            lambda: any(epochs >= 3 for epochs in checkpoint_epochs(spec).values()),
            timeout=180,
            what="a checkpoint with 3 epochs",
        )
        root, saved = max(checkpoint_epochs(spec).items(), key=lambda item: item[1])
        victim = next(
            t for t in load(spec).get_trials(states=(TrialState.RUNNING,)) if t.number == root
        )
        pid = int(str(victim.system_attrs[WORKER_ATTR]).rpartition(":")[2])
        os.kill(pid, signal.SIGKILL)
        output = finish(run, timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, output

    trials = load(spec).get_trials()
    killed = next(t for t in trials if t.number == victim.number)
    assert killed.state == TrialState.FAIL
    retry = next(t for t in trials if t.system_attrs.get("failed_trial") == victim.number)
    assert retry.state == TrialState.COMPLETE
    assert retry.params == killed.params
    assert retry.user_attrs["seed"] == killed.user_attrs["seed"]
    assert retry.user_attrs["resumed_from_epoch"] >= saved
    # earlier epochs re-reported, at the epochs trained (1 .. EPOCHS)
    assert sorted(retry.intermediate_values) == list(range(1, EPOCHS + 1))
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(done) == 2
    assert all(t.value is not None for t in done)
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert checkpoint_epochs(spec) == {}  # deleted once the chain finished


@pytest.mark.slow
def test_sigint_stops_run_within_seconds_and_a_rerun_resumes_the_interrupted_trials(
    tmp_path: Path,
) -> None:
    spec = write_spec(tmp_path, n_trials=2)
    run = start_run(spec, "--workers", "2")
    try:
        wait_for(
            lambda: len(checkpoint_epochs(spec)) == 2,
            timeout=180,
            what="two running trials with checkpoints",
        )
        run.send_signal(signal.SIGINT)
        sent = time.monotonic()
        output = finish(run, timeout=60)
        stopped_after = time.monotonic() - sent
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 130, output
    assert stopped_after < 30, f"hpstudy run took {stopped_after:.0f} s to stop"
    assert_requeued(spec)
    assert_a_rerun_resumes(spec)


def assert_requeued(spec: Path) -> None:
    """Nothing runs; each interrupted trial waits as a retry, with its checkpoint."""
    trials = load(spec).get_trials()
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    interrupted = [t for t in trials if t.user_attrs.get("fail_reason") == "interrupted"]
    assert interrupted and {t.state for t in interrupted} == {TrialState.FAIL}
    waiting = [t for t in trials if t.state == TrialState.WAITING]
    assert sorted(t.system_attrs["failed_trial"] for t in waiting) == sorted(
        t.number for t in interrupted
    )
    table_roots = set(checkpoint_epochs(spec))
    assert {chain_root(t) for t in waiting} <= table_roots


def assert_a_rerun_resumes(spec: Path) -> None:
    """A second run finishes the study, resuming the re-queued trials from their checkpoints."""
    rerun = start_run(spec, "--workers", "2")
    output = finish(rerun, timeout=300)
    assert rerun.returncode == 0, output
    trials = load(spec).get_trials()
    retries = [t for t in trials if "failed_trial" in t.system_attrs]
    assert retries and all(t.state == TrialState.COMPLETE for t in retries)
    assert all(t.user_attrs.get("resumed_from_epoch", 0) >= 1 for t in retries)
    assert len([t for t in trials if t.state == TrialState.COMPLETE]) == 2


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # it ended meanwhile
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    """Running, not ended (a zombie has ended; whoever adopted it reaps it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_the_workers_of_a_killed_run_requeue_their_trials_and_stop(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, n_trials=2, epochs=400)
    run = start_run(spec, "--workers", "2")
    workers: list[int] = []
    try:
        wait_for(
            lambda: len(checkpoint_epochs(spec)) == 2,
            timeout=180,
            what="two running trials with checkpoints",
        )
        workers = children(run.pid)
        assert len(workers) == 2, workers
        run.kill()  # SIGKILL, as the OOM killer or a closed terminal: it stops nothing itself
        run.communicate(timeout=10)
        wait_for(
            lambda: not any(alive(pid) for pid in workers),
            timeout=30,
            what=f"the workers {workers} of the killed run to stop",
        )
    finally:
        if run.poll() is None:
            run.kill()
        for pid in filter(alive, workers):  # a failed test leaves none training
            os.kill(pid, signal.SIGKILL)
    assert_requeued(spec)
    assert_a_rerun_resumes(spec)


def test_checkpoint_table_is_keyed_by_study_and_root(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'c.db'}")
    first, second = CheckpointTable(engine, 1), CheckpointTable(engine, 2)
    first.save(0, 3, b"state")
    assert first.load(0) == (3, b"state")
    assert second.load(0) is None
    assert first.roots() == [0]
    first.delete(0)
    assert first.load(0) is None
