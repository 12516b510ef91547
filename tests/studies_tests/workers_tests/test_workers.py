"""Workers: the budget across workers and runs, joining from anywhere, threads, GPUs, signals.

The slow tests start real `hpstudy run` and `hpstudy worker` processes on a SQLite file and on
the local PostgreSQL server (a throwaway database per test).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import tomllib
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa

from studies.spec import StudySpec
from studies.storage import create_engine, create_or_resume, open_storage
from studies.workers import (
    Interrupted,
    Stop,
    requeue,
    run_worker,
    threads_per_worker,
    worker_command,
    worker_env,
)

TrialState = optuna.trial.TrialState
NAME = "workers"
RUN = [sys.executable, "-m", "studies", "run"]


def spec_text(storage: str, *, n_trials: int, epochs: int = 3) -> str:
    return textwrap.dedent(
        f"""
        [study]
        name = "{NAME}"
        storage = "{storage}"
        n_trials = {n_trials}
        seed = 3
        sampler = {{ name = "tpe", n_startup_trials = 4 }}
        pruner = {{ name = "median", n_startup_trials = 2, n_warmup_steps = 1 }}

        [train]
        dataset = "digits"
        model = "mlp"
        hidden = [32]
        epochs = {epochs}
        batch_size = 64

        [space.lr]
        low = 0.001
        high = 0.3
        log = true

        [space.optimizer]
        choices = ["sgd", "adam"]
        """
    )


def write_spec(folder: Path, storage: str, *, n_trials: int) -> Path:
    path = folder / "spec.toml"
    path.write_text(spec_text(storage, n_trials=n_trials))
    return path


def hpstudy(*args: str, cwd: Path, timeout: float = 400) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "studies", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def finished_trials(url: str) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=NAME, storage=open_storage(url))
    trials = study.get_trials()
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    return [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


def assert_clean_logs(folder: Path) -> None:
    logs = sorted(folder.glob("hpstudy-logs/*/worker-*.log"))
    assert logs
    for log in logs:
        text = log.read_text()
        assert "trials run" in text, f"{log} did not finish:\n{text}"
        for bad in ("Traceback", "ERROR", "Error", "failed:"):
            assert bad not in text, f"{bad!r} in {log}:\n{text}"


# The parent's share-out of cores and GPUs -----------------------------------------------------


def test_threads_are_split_between_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HPSTUDY_THREADS", raising=False)
    cores = os.cpu_count() or 1
    assert threads_per_worker(1) == cores
    assert threads_per_worker(cores * 4) == 1
    env = worker_env(0, 2)
    assert env["OMP_NUM_THREADS"] == env["HPSTUDY_THREADS"] == str(threads_per_worker(2))


def test_gpus_are_handed_out_round_robin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert [worker_env(i, 3)["CUDA_VISIBLE_DEVICES"] for i in range(3)] == ["0", "1", "0"]


def test_worker_command_names_the_storage_variable_not_the_url() -> None:
    spec = StudySpec.from_dict(
        {"study": {"name": "s", "n_trials": 1}, "train": {"dataset": "digits"}, "space": {}}
    ).replace(storage="postgresql://hp:s3cret@db-host/hp")
    command = worker_command(spec, 2, None)
    assert command[-6:] == ["worker", "s", "--storage", "env:HPSTUDY_STORAGE", "--index", "2"]
    assert not any("s3cret" in part for part in command)


def test_worker_env_carries_the_storage_url() -> None:
    env = worker_env(0, 2, storage="postgresql://hp:s3cret@db-host/hp")
    assert env["HPSTUDY_STORAGE"] == "postgresql://hp:s3cret@db-host/hp"


# Signals ---------------------------------------------------------------------------------------


def test_a_stop_signal_interrupts_only_inside_a_trial() -> None:
    stop = Stop().install()
    try:
        with pytest.raises(Interrupted), stop.interruptible():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises before this ends
        assert stop.is_set()
        stop.clear()
        os.kill(os.getpid(), signal.SIGINT)  # outside a trial: only the flag
        deadline = time.monotonic() + 5
        while not stop.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stop.is_set()
        with pytest.raises(Interrupted), stop.interruptible():
            pass  # a stop requested before the trial began interrupts it at once
    finally:
        stop.uninstall()


ORPHAN = """
import os, sys
from studies.workers import Stop
stop = Stop().install()
stop.watch_parent(os.getppid(), every=0.1)
print("watching", flush=True)
print("stopped" if stop.wait(60) else "still running", flush=True)
"""


def test_a_stop_that_watches_its_parent_is_set_once_the_parent_is_killed(tmp_path: Path) -> None:
    said = tmp_path / "child.out"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time\n"
            f"with open({str(said)!r}, 'w') as out:\n"
            f"    subprocess.Popen([sys.executable, '-c', {ORPHAN!r}], stdout=out,"
            " start_new_session=True)\n"
            "time.sleep(120)\n",
        ]
    )
    try:
        deadline = time.monotonic() + 60
        while "watching" not in (said.read_text() if said.exists() else ""):
            assert time.monotonic() < deadline, "the child never started watching"
            time.sleep(0.1)
        assert parent.poll() is None
        parent.kill()  # SIGKILL: the parent cannot tell its child anything
        parent.wait()
        killed = time.monotonic()
        while "\n" not in said.read_text().partition("watching")[2].lstrip("\n"):
            assert time.monotonic() < killed + 10, said.read_text()
            time.sleep(0.1)
    finally:
        if parent.poll() is None:
            parent.kill()
    assert said.read_text().split() == ["watching", "stopped"]


def test_an_orphaned_worker_ends_its_trial_only_at_an_epoch_end() -> None:
    stop = Stop()
    stop.end_of_epoch()  # a worker whose run is there goes on
    stop.orphaned.set()
    with pytest.raises(Interrupted, match="run that started this worker is gone"):
        stop.end_of_epoch()


def test_watching_a_pool_shows_progress_until_its_workers_end_or_a_stop() -> None:
    stop, shown = Stop(), []
    left = iter([True, True, True, False])  # three polls with workers running, then none
    assert stop.watch(lambda: next(left), lambda: shown.append(1), 0.0)
    assert len(shown) == 3
    left = iter([True, True, True])

    def show() -> None:
        shown.append(1)
        stop.set()  # Ctrl-C while the workers run

    assert not stop.watch(lambda: next(left), show, 0.0)
    assert len(shown) == 4  # stopped at the poll after the signal


# One worker, in this process ----------------------------------------------------------------


def create(folder: Path, *, n_trials: int) -> tuple[str, optuna.Study]:
    url = f"sqlite:///{folder / 'study.db'}"
    text = spec_text(url, n_trials=n_trials, epochs=2)
    spec = StudySpec.from_dict(tomllib.loads(text), source="test")
    storage = open_storage(url)
    return url, create_or_resume(spec, storage)


def test_a_worker_runs_exactly_the_budget_and_leaves_no_checkpoint(tmp_path: Path) -> None:
    url, _ = create(tmp_path, n_trials=2)
    summary = run_worker(NAME, url)
    assert summary.trials == 2
    assert len(finished_trials(url)) == 2
    with create_engine(url).connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM hpstudy_checkpoints")).scalar() == 0
        assert connection.execute(sa.text("SELECT count(*) FROM hpstudy_epochs")).scalar() >= 2


def test_a_requeued_trial_is_run_even_when_the_budget_is_spent(tmp_path: Path) -> None:
    url, study = create(tmp_path, n_trials=1)
    died = study.ask()  # a worker took it and died
    study.tell(died, state=TrialState.FAIL)
    requeue(study, study.trials[died.number], max_retry=3)
    summary = run_worker(NAME, url)
    trials = finished_trials(url)
    assert summary.trials == 1
    assert [t.system_attrs.get("failed_trial") for t in trials] == [died.number]


def test_a_programmatic_stop_ends_the_worker_between_trials(tmp_path: Path) -> None:
    url, _ = create(tmp_path, n_trials=50)
    stop = threading.Event()
    stop.set()
    assert run_worker(NAME, url, stop=stop).trials == 0


# Real processes ------------------------------------------------------------------------------


@pytest.mark.slow
def test_four_workers_on_sqlite_finish_exactly_the_budget_across_runs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    spec = write_spec(tmp_path, url, n_trials=8)
    output = hpstudy("run", str(spec), "--workers", "4", cwd=tmp_path)
    assert "trials 8/8 done" in output
    assert len(finished_trials(url)) == 8
    assert_clean_logs(tmp_path)

    hpstudy("run", str(spec), "--workers", "2", "--n-trials", "10", cwd=tmp_path)
    assert len(finished_trials(url)) == 10  # the budget is the study's total
    assert "already has its 10 trials" in hpstudy(
        "run", str(spec), "--n-trials", "10", cwd=tmp_path
    )


@pytest.mark.slow
def test_workers_on_postgresql_including_one_that_joins_by_name(
    tmp_path: Path, postgres_url: str
) -> None:
    spec = write_spec(tmp_path, "sqlite:///unused.db", n_trials=6)
    run = subprocess.Popen(
        [*RUN, str(spec), "--workers", "3", "--storage", postgres_url],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        engine = create_engine(postgres_url)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the study exists once the run has started
            if sa.inspect(engine).has_table("hpstudy_budget"):
                break
            time.sleep(0.5)
        engine.dispose()
        # Another machine needs only the name and the URL: the spec is stored in the study.
        joined = hpstudy("worker", NAME, "--storage", postgres_url, "--index", "9", cwd=tmp_path)
        output, _ = run.communicate(timeout=400)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, output
    assert "trials run" in joined and "Traceback" not in joined
    assert len(finished_trials(postgres_url)) == 6
    assert_clean_logs(tmp_path)


@pytest.mark.parametrize("interrupted", [False, True])
def test_the_summary_line_a_worker_ends_with_reads_back_as_its_summary(interrupted: bool) -> None:
    from studies.workers._worker import WorkerSummary

    summary = WorkerSummary(trials=7, failed=2, interrupted=interrupted)
    assert WorkerSummary.parse(summary.line(3)) == summary
    assert WorkerSummary.parse("2026-12-07 INFO trial 3 pruned") is None
