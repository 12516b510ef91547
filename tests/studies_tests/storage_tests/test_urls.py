"""Storage URLs: `env:NAME` and HPSTUDY_STORAGE, URLs without their password, libpq's own
password sources (PGPASSWORD, PGPASSFILE) left to work through hpstudy's engines, and a
PostgreSQL URL that opens the same study in Optuna's own tools (the slow tests run
`hpstudy run`, `optuna` and `optuna-dashboard` as the environment's commands)."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import psycopg
import psycopg2
import pytest
import sqlalchemy

from studies import StudyError
from studies.storage import (
    STORAGE_ENV,
    create_engine,
    open_storage,
    public_url,
    resolve_storage,
    strip_passwords,
)
from tests.studies_tests.conftest import throwaway_database
from tests.studies_tests.results_tests.test_dashboard import free_port

SECRET = "s3cret-Pw"
WITH_PASSWORD = f"postgresql://hp:{SECRET}@db-host:5432/hp"


# env:NAME and the default ------------------------------------------------------------------


def test_env_prefix_reads_the_url_from_that_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_DB", WITH_PASSWORD)
    assert resolve_storage("env:MY_DB") == WITH_PASSWORD


@pytest.mark.parametrize("value", ["", None])
def test_an_unset_env_variable_is_an_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("MY_DB", raising=False)
    else:
        monkeypatch.setenv("MY_DB", value)
    with pytest.raises(StudyError, match=r"variable MY_DB is (not set|empty).*export MY_DB="):
        resolve_storage("env:MY_DB")


def test_no_storage_means_hpstudy_storage_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STORAGE_ENV, WITH_PASSWORD)
    assert resolve_storage(None) == WITH_PASSWORD


def test_no_storage_and_no_variable_means_the_local_sqlite_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(STORAGE_ENV, raising=False)
    assert resolve_storage(None) == "sqlite:///hpstudy.db"


def test_a_url_resolves_to_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STORAGE_ENV, "sqlite:///other.db")
    assert resolve_storage(WITH_PASSWORD) == WITH_PASSWORD


# URLs to store ---------------------------------------------------------------------------


def test_public_url_drops_the_password_and_keeps_the_rest() -> None:
    assert public_url(WITH_PASSWORD) == "postgresql://hp@db-host:5432/hp"


@pytest.mark.parametrize(
    "url", ["sqlite:///hpstudy.db", "postgresql://hp@db-host/hp", "env:HPSTUDY_STORAGE"]
)
def test_public_url_leaves_a_url_without_password_alone(url: str) -> None:
    assert public_url(url) == url


def test_strip_passwords_cleans_urls_inside_json_text() -> None:
    text = '{"storage": "postgresql+psycopg2://hp:' + SECRET + '@h/db", "x": "a@b"}'
    assert strip_passwords(text) == '{"storage": "postgresql+psycopg2://hp@h/db", "x": "a@b"}'


# libpq finds the password itself ---------------------------------------------------------


@pytest.fixture
def server(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The throwaway database's URL (no password), with no password in the environment."""
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.delenv("PGPASSFILE", raising=False)
    return postgres_url


def password_used(url: str) -> str | None:
    """The password libpq sent (or would send) on a connection of hpstudy's engine."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            password: str | None = connection.connection.driver_connection.info.password  # type: ignore[union-attr]
            return password
    finally:
        engine.dispose()


def test_libpq_takes_the_password_from_pgpassfile(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"127.0.0.1:5432:*:postgres:{SECRET}\n")
    passfile.chmod(0o600)  # libpq ignores a password file others can read
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    assert password_used(server) == SECRET


def test_libpq_takes_the_password_from_pgpassword(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGPASSWORD", SECRET)
    assert password_used(server) == SECRET


def test_optuna_storage_reaches_the_server_through_an_env_url(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_DB", server)
    storage = open_storage(resolve_storage("env:MY_DB"))
    try:
        assert storage.get_all_studies() == []
    finally:
        storage.engine.dispose()


def test_an_unreachable_server_is_named_without_its_password() -> None:
    with pytest.raises(StudyError) as caught:
        open_storage(f"postgresql://hp:{SECRET}@127.0.0.1:1/hp")
    assert "cannot reach the storage postgresql://hp:***@127.0.0.1:1/hp" in str(caught.value)
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    ("revision", "fix"),
    [("v2.4.0.a", "optuna storage upgrade --storage"), ("v99.0.0.z", "pip install -U optuna")],
)
def test_a_database_with_another_optuna_schema_is_refused_with_the_fix(
    tmp_path: Path, revision: str, fix: str
) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    open_storage(url).engine.dispose()
    with sqlite3.connect(tmp_path / "old.db") as connection:
        connection.execute("UPDATE alembic_version SET version_num = ?", (revision,))
    with pytest.raises(StudyError, match=f"has Optuna schema {revision}; .*{re.escape(fix)}"):
        open_storage(url)


def test_a_server_out_of_connections_is_named_with_the_pgbouncer_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    refusal = "connection to server failed: FATAL:  sorry, too many clients already"

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise sqlalchemy.exc.OperationalError("connect", {}, Exception(refusal))

    monkeypatch.setattr(optuna.storages, "RDBStorage", refuse)
    with pytest.raises(StudyError, match=r"max_connections .* PgBouncer in transaction mode"):
        open_storage("postgresql://hp@127.0.0.1:5432/hp")


# Drivers: psycopg 3 for postgresql://, psycopg2 where the URL names it ----------------------------

OPENERS: dict[str, Callable[[str], sqlalchemy.Engine]] = {
    "create_engine": create_engine,
    "open_storage": lambda url: open_storage(url).engine,
}


def connection_of(engine: sqlalchemy.Engine) -> Any:
    """The driver's own connection behind one of `engine`'s."""
    try:
        with engine.connect() as connection:
            return connection.connection.driver_connection
    finally:
        engine.dispose()


@pytest.mark.parametrize("opener", sorted(OPENERS))
def test_a_bare_url_opens_on_psycopg_3_with_no_server_side_prepared_statements(
    server: str, opener: str
) -> None:
    driver = connection_of(OPENERS[opener](server))
    assert isinstance(driver, psycopg.Connection)
    assert driver.prepare_threshold is None  # PgBouncer's transaction mode cannot carry them


@pytest.mark.parametrize("opener", sorted(OPENERS))
def test_a_psycopg2_url_keeps_psycopg2(server: str, opener: str) -> None:
    url = server.replace("postgresql://", "postgresql+psycopg2://")
    assert isinstance(connection_of(OPENERS[opener](url)), psycopg2.extensions.connection)


@pytest.mark.parametrize("opener", sorted(OPENERS))
def test_a_url_whose_driver_is_not_installed_names_the_package(opener: str) -> None:
    with pytest.raises(StudyError, match=r"needs the database driver pg8000, .*pip install"):
        OPENERS[opener]("postgresql+pg8000://hp@127.0.0.1:5432/hp")


# The URL hpstudy prints opens in Optuna's own tools ---------------------------------------------

BIN = Path(sys.executable).parent  # this environment's commands: optuna, optuna-dashboard
HPSTUDY_RUN = [sys.executable, "-m", "studies", "run", "digits-mlp"]


def run_digits(url: str, folder: Path, *, n_trials: int) -> str:
    """`hpstudy run digits-mlp --storage url` with two epochs a trial; returns its output."""
    done = subprocess.run(
        [*HPSTUDY_RUN, "--storage", url, "--n-trials", str(n_trials), "--set", "epochs=2"],
        cwd=folder,
        capture_output=True,
        text=True,
        env={**os.environ, "HPSTUDY_THREADS": "1"},  # two threads crawl on a busy 2-core box
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def printed_url(output: str) -> str:
    """The storage URL in the `hpstudy dashboard --storage URL` hint that a run prints."""
    found = re.search(r"hpstudy dashboard --storage (\S+)", output)
    assert found, output
    return found.group(1)


@pytest.fixture(scope="module")
def digits_on_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A two-trial digits-mlp study made by `hpstudy run` on a bare postgresql:// URL; yields
    the URL the run printed."""
    with throwaway_database() as url:
        output = run_digits(url, tmp_path_factory.mktemp("digits-postgres"), n_trials=2)
        assert printed_url(output) == url  # as given: no driver added
        yield printed_url(output)


@pytest.mark.slow
def test_optuna_lists_the_study_at_the_url_hpstudy_printed(digits_on_postgres: str) -> None:
    done = subprocess.run(
        [str(BIN / "optuna"), "studies", "--storage", digits_on_postgres, "-f", "json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert [(s["name"], s["n_trials"]) for s in json.loads(done.stdout)] == [("digits-mlp", 2)]


WSGIREF = ["--server", "wsgiref"]  # the standard library's server: no gunicorn workers to stop


def read_json(url: str, server: subprocess.Popen[bytes], log: Path) -> Any:
    """GETs `url` once `server` listens; fails with its log when it exits or takes a minute."""
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                return json.load(response)
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"optuna-dashboard did not serve {url}: {log.read_text()}")
            time.sleep(0.2)


@pytest.mark.slow
def test_optuna_dashboard_serves_the_study_at_the_url_hpstudy_printed(
    digits_on_postgres: str, tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "dashboard.log"
    with log.open("wb") as sink:  # a file, not a pipe: a full pipe would stop the server
        server = subprocess.Popen(
            [str(BIN / "optuna-dashboard"), digits_on_postgres, "--port", str(port), *WSGIREF],
            stdout=sink,
            stderr=sink,
        )
    try:
        studies = read_json(f"http://127.0.0.1:{port}/api/studies", server, log)
    finally:
        server.terminate()
        server.wait(30)
    assert [s["study_name"] for s in studies["study_summaries"]] == ["digits-mlp"]


@pytest.mark.slow
def test_a_psycopg2_url_runs_a_study_and_is_printed_as_given(
    postgres_url: str, tmp_path: Path
) -> None:
    url = postgres_url.replace("postgresql://", "postgresql+psycopg2://")
    assert printed_url(run_digits(url, tmp_path, n_trials=1)) == url
    study = optuna.load_study(study_name="digits-mlp", storage=open_storage(url))
    assert [trial.state for trial in study.trials] == [optuna.trial.TrialState.COMPLETE]
