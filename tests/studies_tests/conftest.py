"""A small real study on scikit-learn's digits, shared by the tests that read one back.

Its trials are chosen (`enqueue_trial`), so the tests know what each one did: three that
learn, one with a hopeless learning rate that the median pruner stops, and one whose learning
rate makes it diverge. It runs in this process through the real worker, on one torch thread.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa

from studies import StudySpec, load_spec
from studies.storage import create_or_resume, open_storage
from studies.workers import WorkerOptions, run_worker

POSTGRES = "postgresql://postgres@127.0.0.1:5432"  # the local server tests may use

EPOCHS = 6
GOOD = [
    {"lr": 0.01, "optimizer": "adam"},
    {"lr": 0.003, "optimizer": "adam"},
    {"lr": 0.02, "optimizer": "adam"},
]
HOPELESS = {"lr": 1e-6, "optimizer": "sgd", "momentum": 0.0}  # learns nothing in 6 epochs
DIVERGING = {"lr": 1e6, "optimizer": "sgd", "momentum": 0.0}  # NaN within an epoch or two


def write_digits_spec(
    folder: Path,
    *,
    name: str = "digits-test",
    n_trials: int = 5,
    epochs: int = EPOCHS,
    pruner: str = '{ name = "median", n_startup_trials = 3, n_warmup_steps = 2 }',
    sampler: str = '{ name = "tpe", n_startup_trials = 3 }',
    storage: str | None = None,
) -> Path:
    """A digits spec in `folder` (its database there too); returns its path."""
    path = folder / f"{name}.toml"
    path.write_text(
        textwrap.dedent(
            f"""\
            [study]
            name = "{name}"
            storage = "{storage or f"sqlite:///{folder / 's.db'}"}"
            metric = "dev_loss"
            n_trials = {n_trials}
            seed = 3
            sampler = {sampler}
            pruner = {pruner}

            [train]
            dataset = "digits"
            hidden = [32]
            epochs = {epochs}
            batch_size = 64
            dev_fraction = 0.2

            [space.lr]
            low = 1e-6
            high = 1e6
            log = true

            [space.optimizer]
            choices = ["sgd", "adam"]

            [space.momentum]
            low = 0.0
            high = 0.9
            when = {{ optimizer = ["sgd"] }}
            """
        )
    )
    return path


@dataclasses.dataclass(frozen=True)
class FinishedStudy:
    spec: StudySpec
    url: str
    study: optuna.Study
    hopeless: int  # the number of the trial with the hopeless learning rate
    diverging: int  # the number of the trial that diverges
    epochs: int = EPOCHS


@pytest.fixture(scope="session")
def digits_spec() -> Callable[..., Path]:
    """`write_digits_spec(folder, *, name=, n_trials=, epochs=, pruner=, sampler=, storage=)`."""
    return write_digits_spec


@pytest.fixture(scope="session")
def digits_study(tmp_path_factory: pytest.TempPathFactory) -> FinishedStudy:
    import torch

    folder = tmp_path_factory.mktemp("digits-study")
    spec = load_spec(str(write_digits_spec(folder)))
    study = create_or_resume(spec, open_storage(spec.storage))
    for params in [*GOOD, HOPELESS, DIVERGING]:
        study.enqueue_trial(params)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two threads fighting other jobs for two cores crawl
    try:
        run_worker(spec.name, spec.storage)
    finally:
        torch.set_num_threads(threads)
    loaded = optuna.load_study(study_name=spec.name, storage=spec.storage)
    return FinishedStudy(spec, spec.storage, loaded, hopeless=3, diverging=4)


@contextlib.contextmanager
def throwaway_database() -> Iterator[str]:
    """A new database on the local PostgreSQL server, dropped afterwards; skips without one."""
    admin = sa.create_engine(f"{POSTGRES}/postgres", isolation_level="AUTOCOMMIT")
    name = f"hpstudy_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server on 127.0.0.1:5432: {exc}")
    try:
        yield f"{POSTGRES}/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A throwaway database on the local PostgreSQL server, dropped afterwards."""
    with throwaway_database() as url:
        yield url


TINY = "tiny"  # the name of every tiny study below


def create_tiny_study(folder: Path, *, n_trials: int = 3, seed: int = 0, run: bool = False) -> str:
    """A random-sampler study on digits (lr and dropout, 3 epochs, no pruning) in
    `folder/study.db`.

    With `run`, an hpstudy worker in this process finishes its trials. Returns the storage URL.
    """
    url = f"sqlite:///{folder / 'study.db'}"
    spec = StudySpec.from_dict(
        {
            "study": {
                "name": TINY,
                "n_trials": n_trials,
                "seed": seed,
                "sampler": {"name": "random"},
                "pruner": {"name": "none"},  # every trial finishes: curves, pictures, reports
            },
            "train": {"dataset": "digits", "hidden": [16], "epochs": 3, "device": "cpu"},
            "space": {
                "lr": {"low": 0.01, "high": 0.5, "log": True},
                "dropout": {"low": 0.0, "high": 0.3},
            },
        },
        source="test",
    ).replace(storage=url)
    create_or_resume(spec, open_storage(url))
    if run:
        run_worker(TINY, url, options=WorkerOptions(flush_interval=0))
    return url


@pytest.fixture(scope="session")
def tiny_study() -> Callable[..., str]:
    """`create_tiny_study(folder, *, n_trials=3, seed=0, run=False) -> url`."""
    return create_tiny_study


CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
)


@pytest.fixture
def chromium() -> list[str]:
    """Headless Chromium's command line up to its per-run flags; skips when none is on PATH."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return [path, *CHROMIUM_FLAGS]
    pytest.skip(
        f"no Chromium found (looked for {', '.join(CHROMIUM_NAMES)} on PATH); "
        f"install Debian's chromium to run the browser tests, as .ci/run does"
    )
