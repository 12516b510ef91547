"""`hpstudy run --ray` (issue 19): the spec's `ray`, the refusals, where trials trained, and
real Ray runs.

The slow tests share one Ray cluster made of local nodes (`ray.cluster_utils.Cluster`): a
head without CPUs (the driver only), two one-CPU nodes that a node-loss test spreads two
workers over and then loses one of, and later a node declaring one GPU, on which four
workers of a quarter GPU each run at once and a fifth waits. The local-Ray tests run first,
as `hpstudy run` subprocesses that start their own Ray, before that cluster exists.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy as sa
from optuna.trial import TrialState

from studies import ParameterError, StudySpec, load_spec
from studies.cli._main import build_parser
from studies.results import trial_rows
from studies.spec import RaySettings, SpecError, ray_settings
from studies.storage import WORKER_ATTR, TrialAttrs, chain_root
from studies.workers import run_study, trial_note
from studies.workers._ray_checks import MAX_FOLDER_MB, check_cluster, check_spec, import_ray
from studies.workers._signals import Stop
from tests.studies_tests.conftest import throwaway_database, write_digits_spec


def spec_data(**study: Any) -> dict[str, Any]:
    return {
        "study": {"name": "r", "n_trials": 2, **study},
        "train": {"dataset": "digits", "hidden": [16], "epochs": 2},
        "space": {"lr": {"low": 0.01, "high": 0.1, "log": True}},
    }


# The spec's `ray`, the flags and the API's value ------------------------------------------


def test_a_ray_table_is_read_with_its_shares() -> None:
    ray = {"address": "auto", "cpus_per_worker": 2, "gpus_per_worker": 0.25}
    spec = StudySpec.from_dict(spec_data(ray=ray))
    assert spec.ray == RaySettings(address="auto", cpus_per_worker=2.0, gpus_per_worker=0.25)


def test_ray_true_is_a_local_ray_and_false_none() -> None:
    assert StudySpec.from_dict(spec_data(ray=True)).ray == RaySettings()
    assert StudySpec.from_dict(spec_data(ray=False)).ray is None
    assert StudySpec.from_dict(spec_data()).ray is None


def test_ray_survives_the_round_trip_through_a_dict() -> None:
    spec = StudySpec.from_dict(spec_data(ray={"address": "ray://h:10001", "gpus_per_worker": 0.5}))
    assert StudySpec.from_dict(spec.to_dict()).ray == spec.ray


def test_a_bad_ray_key_is_named_with_the_valid_ones() -> None:
    with pytest.raises(SpecError) as caught:
        StudySpec.from_dict(spec_data(ray={"gpus": 1}))
    message = str(caught.value)
    assert "study.ray.gpus: unknown key" in message
    assert "gpus_per_worker" in message and "cpus_per_worker" in message


@pytest.mark.parametrize("gpus", [-0.25, 1.5, "1"])
def test_a_bad_gpu_share_is_refused(gpus: Any) -> None:
    with pytest.raises(SpecError, match=r"study.ray.gpus_per_worker: GPUs per worker"):
        StudySpec.from_dict(spec_data(ray={"gpus_per_worker": gpus}))


def test_flags_override_the_spec_and_keep_what_they_do_not_name() -> None:
    spec = RaySettings(address="auto", cpus_per_worker=2, gpus_per_worker=0.5)
    assert ray_settings(spec, True) == spec
    assert ray_settings(spec, "ray://head:10001") == spec.replace(address="ray://head:10001")
    assert ray_settings(spec, None, gpus_per_worker=0.25) == spec.replace(gpus_per_worker=0.25)
    assert ray_settings(None, {"cpus_per_worker": 3}) == RaySettings(cpus_per_worker=3)


def test_a_share_without_ray_says_to_add_ray() -> None:
    with pytest.raises(ParameterError, match=r"`gpus_per_worker`: only for Ray workers"):
        ray_settings(None, None, gpus_per_worker=1)


@pytest.mark.parametrize(
    ("argv", "expected"), [([], None), (["--ray"], True), (["--ray", "auto"], "auto")]
)
def test_the_ray_flag_takes_an_optional_address(argv: list[str], expected: Any) -> None:
    args = build_parser().parse_args(["run", "digits-mlp", *argv, "--gpus-per-worker", "0.25"])
    assert isinstance(args, argparse.Namespace)
    assert args.ray == expected
    assert args.gpus_per_worker == 0.25


# Refusals that need no cluster ---------------------------------------------------------------


def folder_spec(folder: Path, **train: Any) -> StudySpec:
    data = spec_data(storage=f"sqlite:///{folder / 's.db'}", folder=str(folder))
    data["train"].update(train)
    return StudySpec.from_dict(data)


def test_sqlite_is_refused_for_a_cluster_address(tmp_path: Path) -> None:
    with pytest.raises(Exception, match=r"SQLite file.*use PostgreSQL"):
        check_spec(folder_spec(tmp_path), RaySettings(address="auto"))
    check_spec(folder_spec(tmp_path), RaySettings())  # a local Ray shares the file


def test_a_folder_over_the_limit_is_refused_with_the_fix(tmp_path: Path) -> None:
    with open(tmp_path / "big.npz", "wb") as big:
        big.truncate((MAX_FOLDER_MB + 1) * 1024 * 1024)  # sparse: no disk used
    spec = folder_spec(tmp_path).replace(storage="postgresql://hp@db:5432/hp")
    with pytest.raises(Exception, match=r"more than 100 MB.*a path every node sees"):
        check_spec(spec, RaySettings(address="auto"))


def test_databases_and_logs_do_not_count_toward_the_limit(tmp_path: Path) -> None:
    with open(tmp_path / "s.db", "wb") as db:
        db.truncate((MAX_FOLDER_MB + 1) * 1024 * 1024)
    spec = folder_spec(tmp_path).replace(storage="postgresql://hp@db:5432/hp")
    check_spec(spec, RaySettings(address="auto"))


def test_a_data_file_outside_the_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "spec").mkdir()
    (tmp_path / "data.csv").write_text("x,y\n1,0\n")
    spec = folder_spec(tmp_path / "spec").replace(storage="postgresql://hp@db:5432/hp")
    spec = spec.replace(train=spec.train.replace(dataset="../data.csv", target="y"))
    with pytest.raises(Exception, match=r"train.dataset: ../data.csv lies outside"):
        check_spec(spec, RaySettings(address="auto"))


def test_the_cluster_checks_read_its_nodes(tmp_path: Path) -> None:
    nodes = [{"Alive": True, "Resources": {"CPU": 2.0}}] * 2
    with pytest.raises(Exception, match=r"SQLite.*a Ray cluster of 2 nodes"):
        check_cluster(folder_spec(tmp_path), RaySettings(), nodes)
    with pytest.raises(Exception, match=r"the Ray cluster has no GPU"):
        check_cluster(folder_spec(tmp_path), RaySettings(gpus_per_worker=0.25), nodes[:1])
    check_cluster(folder_spec(tmp_path), RaySettings(), nodes[:1])


def test_without_the_extra_the_error_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(Exception, match=r"pip install 'hpstudy\[ray\]'"):
        import_ray()


def test_ray_is_imported_only_on_the_ray_path() -> None:
    code = (
        "import sys, studies, studies.workers._runner, studies.cli._main;"
        "print('ray' in sys.modules)"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert shown.stdout.strip() == "False", shown.stderr


# Where a trial trained -----------------------------------------------------------------------


def test_host_and_device_round_trip_and_read_as_where() -> None:
    trial = optuna.trial.create_trial(value=1.0, user_attrs={"host": "n1", "device": "cuda:2"})
    attrs = TrialAttrs.of(trial)
    assert (attrs.host, attrs.device, attrs.where) == ("n1", "cuda:2", "n1/cuda:2")
    assert TrialAttrs.of(optuna.trial.create_trial(value=1.0)).where is None
    assert {"host", "device"}.isdisjoint(TrialAttrs.outcome_keys())  # a retry keeps them


def test_a_trials_row_says_where_the_trial_trained() -> None:
    study = optuna.create_study()
    study.add_trial(
        optuna.trial.create_trial(value=0.5, user_attrs={"host": "n1", "device": "cpu"})
    )
    study.add_trial(optuna.trial.create_trial(value=0.7))
    assert [row.where for row in trial_rows(study).rows] == ["n1/cpu", None]


def test_the_dashboard_note_says_where_the_trial_trained() -> None:
    from studies.analysis import Diagnosis

    note = trial_note(
        3,
        [],
        "completed",
        None,
        Diagnosis.from_dict({"labels": [], "numbers": {}}),
        where="n1/cuda:0",
    )
    assert "Trained on n1/cuda:0." in note


# Real Ray runs -------------------------------------------------------------------------------


def write_spec(folder: Path, name: str, *, n_trials: int, epochs: int) -> Path:
    """A digits study whose trials all train every epoch: no pruner, no diverging lr."""
    path = folder / f"{name}.toml"
    path.write_text(
        f"""[study]
name = "{name}"
storage = "sqlite:///{folder / "s.db"}"
n_trials = {n_trials}
seed = 3
sampler = {{ name = "random" }}
pruner = {{ name = "none" }}

[train]
dataset = "digits"
hidden = [32]
epochs = {epochs}
batch_size = 64
device = "auto"

[space.lr]
low = 0.005
high = 0.05
log = true
"""
    )
    return path


def hpstudy(*argv: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "studies", *argv],
        cwd=cwd,
        env={**os.environ, "HPSTUDY_THREADS": "1", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def trials_of(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    # Never creates the tables: that would race the run creating them.
    storage = optuna.storages.RDBStorage(url, skip_table_creation=True)
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
    finally:
        storage.engine.dispose()


def states(trials: list[optuna.trial.FrozenTrial]) -> dict[str, int]:
    found: dict[str, int] = {}
    for trial in trials:
        found[trial.state.name] = found.get(trial.state.name, 0) + 1
    return found


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def running(url: str, name: str, seconds: float = 0) -> list[optuna.trial.FrozenTrial]:
    """The trials that have been running for `seconds` (epochs are written only in batches)."""
    try:
        trials = trials_of(url, name)
    except Exception:  # the study is not made yet
        return []
    now = datetime.datetime.now()
    return [
        t
        for t in trials
        if t.state == TrialState.RUNNING
        and t.datetime_start is not None
        and (now - t.datetime_start).total_seconds() >= seconds
    ]


def test_a_study_with_its_budget_says_so_without_starting_ray(tmp_path: Path) -> None:
    ray = import_ray()
    assert not ray.is_initialized()
    spec = load_spec(str(write_spec(tmp_path, "full", n_trials=1, epochs=1)))
    study = optuna.create_study(study_name="full", storage=spec.storage, direction="minimize")
    study.add_trial(optuna.trial.create_trial(value=0.5))
    said: list[str] = []
    started = time.monotonic()
    run_study(spec, workers=2, ray=RaySettings(), echo=said.append)
    assert not ray.is_initialized()
    assert time.monotonic() - started < 10
    assert len(said) == 1, said  # no "Ray ready in": Ray neither started nor stopped
    assert said[0].startswith("study 'full' already has its 1 trials")


@pytest.mark.slow
def test_a_local_ray_keeps_its_token_line_off_the_terminal(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    spec = load_spec(str(write_spec(tmp_path, "quiet", n_trials=1, epochs=1)))
    run_study(spec, workers=1, ray=RaySettings(), echo=print)
    output = capfd.readouterr()
    assert "Ray ready in" in output.out
    assert "Token authentication" not in output.out + output.err


@pytest.mark.slow
def test_ctrl_c_requeues_and_a_second_local_run_finishes_the_budget(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, "local", n_trials=3, epochs=250)
    url = f"sqlite:///{tmp_path / 's.db'}"
    # 1. Ctrl-C once both workers train: their trials are re-queued, none stays RUNNING.
    run = hpstudy("run", str(spec), "--ray", "--workers", "2", cwd=tmp_path)
    try:
        wait_for(lambda: len(running(url, "local")) == 2, 300, "two running trials")
        numbers = [trial.number for trial in running(url, "local")]
        wait_for(  # each with a checkpoint to resume from
            lambda: all(checkpointed(url, number) >= 2 for number in numbers), 60, "checkpoints"
        )
    finally:
        run.send_signal(signal.SIGINT)
    output, _ = run.communicate(timeout=60)
    assert run.returncode == 130, output
    interrupted = trials_of(url, "local")
    assert states(interrupted).get("RUNNING", 0) == 0, output
    assert states(interrupted)["WAITING"] == 2
    assert [t.user_attrs.get("fail_reason") for t in interrupted if t.state == TrialState.FAIL] == [
        "interrupted",
        "interrupted",
    ]
    # 2. The next run resumes them and ends with the budget exact.
    again = hpstudy("run", str(spec), "--ray", "--workers", "2", cwd=tmp_path)
    output, _ = again.communicate(timeout=180)
    assert again.returncode == 0, output
    assert "Ray ready in" in output and "where" in output
    assert "Token authentication" not in output
    trials = trials_of(url, "local")
    finished = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(finished) == 3 and states(trials).get("RUNNING", 0) == 0, states(trials)
    assert len({chain_root(t) for t in finished}) == 3  # no trial trained twice
    assert any(TrialAttrs.of(t).resumed_from_epoch for t in finished)
    for trial in trials:  # host and device from the first epoch on, re-queued trials too
        attrs = TrialAttrs.of(trial)
        assert attrs.host == os.uname().nodename and attrs.device == "cpu", trial.number


# One cluster of local nodes for the tests below ---------------------------------------------


class Nodes:
    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster
        self.small = [cluster.add_node(num_cpus=1) for _ in range(2)]
        cluster.wait_for_nodes()

    def raylet_of(self, pid: int) -> Any:
        """The node whose raylet started worker process `pid`."""
        parent = int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
        for node in self.small:
            if any(p.process.pid == parent for p in node.all_processes["raylet"]):
                return node
        raise AssertionError(f"process {pid} (parent {parent}) belongs to no small node")


@pytest.fixture(scope="module")
def nodes() -> Iterator[Nodes]:
    saved = {k: os.environ.get(k) for k in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER",)}
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ.setdefault("RAY_worker_niceness", "0")
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 0,
            "include_dashboard": False,
            "object_store_memory": 80 * 1024 * 1024,
        },
    )
    try:
        made = Nodes(cluster)
        ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
        yield made
    finally:
        ray.shutdown()
        cluster.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.mark.slow
def test_sqlite_on_a_multi_node_cluster_is_refused_before_the_study_exists(
    nodes: Nodes, tmp_path: Path
) -> None:
    spec = load_spec(str(write_digits_spec(tmp_path, name="refused", n_trials=2)))
    with pytest.raises(Exception, match=r"SQLite file.*a Ray cluster of 3 nodes.*PostgreSQL"):
        run_study(spec, workers=2, ray=RaySettings(), echo=lambda _line: None)
    assert not (tmp_path / "s.db").exists()


@pytest.mark.slow
def test_gpus_asked_of_a_cluster_without_any_are_refused(nodes: Nodes, tmp_path: Path) -> None:
    spec = load_spec(str(write_digits_spec(tmp_path, name="gpu", n_trials=2)))
    with pytest.raises(Exception, match=r"the Ray cluster has no GPU"):
        run_study(spec, workers=1, ray=RaySettings(gpus_per_worker=0.25), echo=lambda _: None)


def checkpointed(url: str, root: int) -> int:
    """The epochs that the checkpoint of retry chain `root` holds (0 for none)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            found = connection.execute(
                sa.text("SELECT epochs FROM hpstudy_checkpoints WHERE root_trial = :root"),
                {"root": root},
            ).scalar()
    except sa.exc.DBAPIError:  # no table yet
        return 0
    finally:
        engine.dispose()
    return int(found or 0)


def made(lines: list[str]) -> bool:
    """The run said it made the study: reading it cannot race the run making the tables."""
    return any(line.startswith("study '") for line in lines)


def with_password(url: str, secret: str) -> str:
    return url.replace("postgresql://postgres@", f"postgresql://postgres:{secret}@")


class PsSampler(threading.Thread):
    """Reads every process's command line (what every user may read) until stopped."""

    def __init__(self, secret: str) -> None:
        super().__init__(daemon=True)
        self.secret, self.leaks, self.samples = secret, [], 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            table = subprocess.run(
                ["ps", "-ww", "-eo", "pid=,args="], capture_output=True, text=True
            ).stdout
            self.leaks += [line for line in table.splitlines() if self.secret in line]
            self.samples += 1
            time.sleep(0.2)


@pytest.mark.slow
def test_a_lost_node_loses_no_trial_and_no_password_leaks(nodes: Nodes, tmp_path: Path) -> None:
    import ray

    secret = f"Pw{uuid.uuid4().hex[:12]}"
    name = "lost"
    spec = load_spec(str(write_spec(tmp_path, name, n_trials=2, epochs=250)))
    with throwaway_database() as plain:
        url = with_password(plain, secret)
        lines: list[str] = []
        failure: list[BaseException] = []

        def study() -> None:
            try:
                run_study(
                    spec.replace(storage=url),
                    workers=2,
                    heartbeat=1,
                    grace=4,
                    ray=RaySettings(cpus_per_worker=1),
                    echo=lines.append,
                )
            except BaseException as exc:
                failure.append(exc)

        sampler = PsSampler(secret)
        sampler.start()
        runner = threading.Thread(target=study)
        runner.start()
        try:
            # 1. Both workers train, one on each small node; lose one node mid-trial.
            # Both train, and the first of them has a checkpoint of a few epochs.
            wait_for(
                lambda: failure or (made(lines) and len(running(plain, name)) == 2),
                300,
                f"two running trials: {lines}",
            )
            assert not failure, (failure, lines)
            [victim, *_] = running(plain, name)
            wait_for(lambda: checkpointed(plain, victim.number) >= 3, 60, "a checkpoint")
            pid = int(str(victim.system_attrs[WORKER_ATTR]).rpartition(":")[2])
            nodes.cluster.remove_node(nodes.raylet_of(pid), allow_graceful=False)
            nodes.small = [n for n in nodes.small if n.all_processes]
        finally:
            runner.join(timeout=240)
            sampler.done.set()
            sampler.join()
        assert not runner.is_alive()
        assert not failure, (failure, lines)
        # 2. The budget exact, nothing RUNNING, nothing trained twice, the lost trial resumed.
        trials = trials_of(plain, name)
        finished = [t for t in trials if t.state == TrialState.COMPLETE]
        assert len(finished) == 2, states(trials)
        assert states(trials).get("RUNNING", 0) == 0 and states(trials).get("WAITING", 0) == 0
        assert len({chain_root(t) for t in finished}) == 2
        retry = next(t for t in finished if chain_root(t) == victim.number)
        assert retry.number != victim.number
        assert TrialAttrs.of(retry).resumed_from_epoch, retry.user_attrs
        # 3. The password: not in ps, Ray's logs, or what the study stores.
        assert sampler.samples > 5 and sampler.leaks == []
        session = Path(ray._private.worker._global_node.get_session_dir_path())
        logs = [p for p in session.rglob("*") if p.is_file()]
        assert logs
        assert [p for p in logs if secret.encode() in p.read_bytes()] == []
        stored = json.dumps(
            [[t.user_attrs, t.system_attrs] for t in trials], default=str
        ) + json.dumps(optuna.load_study(study_name=name, storage=plain).user_attrs)
        assert secret not in stored


@pytest.mark.slow
def test_quarter_gpus_pack_four_workers_on_a_device_and_a_fifth_waits(
    nodes: Nodes, tmp_path: Path
) -> None:
    nodes.cluster.add_node(num_cpus=5, num_gpus=1)
    nodes.cluster.wait_for_nodes()
    name = "packed"
    spec = load_spec(str(write_spec(tmp_path, name, n_trials=5, epochs=150)))
    with throwaway_database() as url:
        run_study(
            spec.replace(storage=url),
            workers=5,
            ray=RaySettings(cpus_per_worker=1, gpus_per_worker=0.25),
            echo=lambda _line: None,
        )
        trials = trials_of(url, name)
    assert states(trials) == {"COMPLETE": 5}
    spans = [(t.datetime_start, t.datetime_complete) for t in trials]
    overlap = max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)
    assert overlap == 4, spans
    workers = {str(t.system_attrs.get(WORKER_ATTR)) for t in trials}
    assert len(workers) == 4, workers  # the fifth task found the budget spent


def test_stop_can_be_installed_again_and_restores_the_first_handlers() -> None:
    before = signal.getsignal(signal.SIGTERM)
    stop = Stop().install()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a library takes SIGTERM over (ray.init)
    stop.install()
    os.kill(os.getpid(), signal.SIGTERM)  # handled by the stop again, not by the default
    assert stop.wait(5)
    stop.uninstall()
    assert signal.getsignal(signal.SIGTERM) == before
