"""A database password never leaves the places it must be: not `ps`, not the database's
attributes and rows, not logs, exports, reports or copies (issue 18).

The slow tests run `hpstudy run --workers 2` on the local PostgreSQL server with a password in
the URL (the server trusts local users, so any password connects), sample the process table
while the workers run, and then search everything the run left behind for the password.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa

from studies import StudySpec, load_spec
from studies.storage import (
    SPEC_ATTR,
    StudyAttrs,
    copy_study,
    create_or_resume,
    open_storage,
    strip_stored_passwords,
)
from studies.workers import prepare_study
from tests.studies_tests.conftest import throwaway_database, write_digits_spec

OLD = "0ld-Pw"  # the password an earlier hpstudy stored with a study
OLD_URL = f"postgresql://hp:{OLD}@db-host:5432/hp"


# Stored attributes -------------------------------------------------------------------------


def sqlite_spec(folder: Path) -> StudySpec:
    return load_spec(str(write_digits_spec(folder, n_trials=3)))


def plant_old_password(spec: StudySpec) -> None:
    """The study as an earlier hpstudy left it: its URL, password included, in attributes."""
    storage = open_storage(spec.storage)
    study = create_or_resume(spec, storage)
    spec_dict = spec.to_dict()
    spec_dict["study"]["storage"] = OLD_URL
    study.set_user_attr(SPEC_ATTR, json.dumps(spec_dict))
    storage.set_study_system_attr(storage.get_study_id_from_name(spec.name), "hpstudy:x", OLD_URL)
    finished = optuna.trial.create_trial(
        value=1.0, user_attrs={"transfer": {"storage": f"other@{OLD_URL}"}}
    )
    study.add_trial(finished)  # Optuna itself refuses to change a finished trial's attributes
    storage.engine.dispose()


def attribute_text(url: str, name: str) -> str:
    """Every study and trial attribute of study `name`, as text."""
    storage = open_storage(url)
    study = optuna.load_study(study_name=name, storage=storage)
    system = storage.get_study_system_attrs(storage.get_study_id_from_name(name))
    values: list[object] = [study.user_attrs, system]
    for trial in study.get_trials(deepcopy=False):
        values += [trial.user_attrs, trial.system_attrs]
    storage.engine.dispose()
    return json.dumps(values, default=str)


def test_the_stored_spec_names_the_database_without_its_password(tmp_path: Path) -> None:
    spec = sqlite_spec(tmp_path)
    study = create_or_resume(spec.replace(storage=OLD_URL), open_storage(spec.storage))
    stored = json.loads(study.user_attrs[SPEC_ATTR])["study"]["storage"]
    assert stored == "postgresql://hp@db-host:5432/hp"


def test_stripping_cleans_study_and_finished_trial_attributes(tmp_path: Path) -> None:
    spec = sqlite_spec(tmp_path)
    plant_old_password(spec)
    changed = strip_stored_passwords(open_storage(spec.storage), spec.name)
    assert sorted(changed) == ["hpstudy:x", SPEC_ATTR, "trial 0 transfer"]
    assert OLD not in attribute_text(spec.storage, spec.name)


def test_a_cleaned_study_says_so(tmp_path: Path) -> None:
    spec = sqlite_spec(tmp_path)
    plant_old_password(spec)
    storage = open_storage(spec.storage)
    strip_stored_passwords(storage, spec.name)
    assert StudyAttrs.read(storage, storage.get_study_id_from_name(spec.name)).passwords_stripped
    storage.engine.dispose()


def test_a_cleaned_study_is_not_scanned_again(tmp_path: Path) -> None:
    spec = sqlite_spec(tmp_path)
    plant_old_password(spec)
    storage = open_storage(spec.storage)
    assert strip_stored_passwords(storage, spec.name)  # the first time: scanned and cleaned
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    sa.event.listen(storage.engine, "before_cursor_execute", seen)
    assert strip_stored_passwords(storage, spec.name) == []
    sa.event.remove(storage.engine, "before_cursor_execute", seen)
    storage.engine.dispose()
    assert statements  # the study's own attributes were read
    assert not [s for s in statements if " LIKE " in s.upper()], statements


def test_a_run_removes_a_stored_password_and_says_so(tmp_path: Path) -> None:
    spec = sqlite_spec(tmp_path)
    plant_old_password(spec)
    lines: list[str] = []
    prepare_study(spec, echo=lines.append)
    assert any("removed the database password" in line for line in lines), lines
    assert OLD not in attribute_text(spec.storage, spec.name)


def test_the_next_run_says_nothing_more(tmp_path: Path) -> None:
    spec = sqlite_spec(tmp_path)
    plant_old_password(spec)
    prepare_study(spec, echo=lambda _line: None)
    lines: list[str] = []
    prepare_study(spec, echo=lines.append)
    assert not any("password" in line for line in lines), lines


def test_a_copy_holds_no_stored_password(tmp_path: Path) -> None:
    spec = sqlite_spec(tmp_path)
    plant_old_password(spec)
    target = f"sqlite:///{tmp_path / 'copy.db'}"
    copy_study(spec.name, spec.storage, target)
    assert OLD not in attribute_text(target, spec.name)


# A real run on PostgreSQL with a password in the URL ---------------------------------------

NAME = "secret"


@dataclasses.dataclass(frozen=True)
class LeakRun:
    secret: str
    folder: Path
    url: str  # with the password
    workers_seen: dict[str, str]  # pid -> command line, of every worker process seen running
    leaks_in_ps: list[str]  # process lines with the password, but the user's own command
    printed: dict[str, str]  # command -> its stdout and stderr
    database: str  # every row of every table, as text
    copy: Path  # the SQLite file `hpstudy copy` wrote


def with_password(url: str, secret: str) -> str:
    return url.replace("postgresql://postgres@", f"postgresql://postgres:{secret}@")


def hpstudy(*argv: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "studies", *argv],
        cwd=cwd,
        env={**os.environ, "HPSTUDY_THREADS": "1", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process: subprocess.Popen[str], timeout: float = 300) -> str:
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output
    return output


def sample_processes(run: subprocess.Popen[str], secret: str) -> tuple[dict[str, str], list[str]]:
    """Reads `ps` (what every user of the machine may read) until `run` exits."""
    workers: dict[str, str] = {}
    leaks: list[str] = []
    while run.poll() is None:
        # -ww: whole command lines; plain ps cuts them at 80 columns, hiding a URL's tail.
        table = subprocess.run(
            ["ps", "-ww", "-eo", "pid=,args="], capture_output=True, text=True, check=True
        ).stdout
        rows = [line.strip().partition(" ")[::2] for line in table.splitlines()]
        # A child between fork and exec still shows its parent's command line, which is the
        # user's own (caught under load: two such rows in one `ps`); what it runs is seen after.
        own = {args for pid, args in rows if pid == str(run.pid)}
        for pid, args in rows:
            if "studies worker" in args and f" {NAME} " in args:
                workers[pid] = args
            if secret in args and args not in own:  # `own` holds the run's own row too
                leaks.append(f"{pid} {args}")
        time.sleep(0.1)
    return workers, leaks


def dump_database(url: str) -> str:
    """Every value in every table of the database (binary columns decoded leniently)."""
    engine = sa.create_engine(url)
    parts: list[str] = []
    try:
        with engine.connect() as connection:
            for table in sa.inspect(connection).get_table_names():
                for row in connection.execute(sa.text(f'SELECT * FROM "{table}"')):
                    for value in row:
                        raw = bytes(value) if isinstance(value, (bytes, memoryview)) else None
                        parts.append(raw.decode("latin-1") if raw else str(value))
    finally:
        engine.dispose()
    return "\n".join(parts)


@pytest.fixture(scope="module")
def leak_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LeakRun]:
    secret = f"Pw{uuid.uuid4().hex[:12]}"
    folder = tmp_path_factory.mktemp("secret")
    spec = write_digits_spec(folder, name=NAME, n_trials=4, epochs=3)
    with throwaway_database() as plain:
        url = with_password(plain, secret)
        # 1. The command: the password in the user's own --storage.
        run = hpstudy("run", str(spec), "--storage", url, "--workers", "2", cwd=folder)
        workers, leaks = sample_processes(run, secret)
        printed = {"run": finish(run)}
        # 2. What reads the study back, given the URL by environment.
        env = {"STUDY_DB": url}
        copy = folder / "copy.db"
        for command in (
            ["status", NAME],
            ["trials", NAME],
            ["studies"],
            ["export", NAME, "-o", "best.toml"],
            ["report", NAME, "-o", "report.html"],
        ):
            process = hpstudy(*command, "--storage", "env:STUDY_DB", cwd=folder, env=env)
            printed[command[0]] = finish(process)
        copying = ["copy", NAME, "--from", "env:STUDY_DB", "--to", f"sqlite:///{copy}"]
        printed["copy"] = finish(hpstudy(*copying, cwd=folder, env=env))
        yield LeakRun(secret, folder, url, workers, leaks, printed, dump_database(url), copy)


def files_holding(folder: Path, secret: str) -> list[Path]:
    return [
        path
        for path in folder.rglob("*")
        if path.is_file() and secret.encode() in path.read_bytes()
    ]


@pytest.mark.slow
def test_both_workers_were_seen_running_with_the_variable_in_argv(leak_run: LeakRun) -> None:
    assert len(leak_run.workers_seen) >= 2, leak_run.workers_seen
    commands = leak_run.workers_seen.values()
    assert all("--storage env:HPSTUDY_STORAGE" in a for a in commands), commands


@pytest.mark.slow
def test_no_process_hpstudy_started_shows_the_password(leak_run: LeakRun) -> None:
    assert leak_run.leaks_in_ps == []


@pytest.mark.slow
def test_no_row_of_the_database_holds_the_password(leak_run: LeakRun) -> None:
    assert "hpstudy_spec" in leak_run.database  # the dump reached the attributes
    assert leak_run.secret not in leak_run.database


@pytest.mark.slow
def test_no_attribute_holds_the_password(leak_run: LeakRun) -> None:
    assert leak_run.secret not in attribute_text(leak_run.url, NAME)


@pytest.mark.slow
def test_the_stored_spec_keeps_the_url_without_the_password(leak_run: LeakRun) -> None:
    storage = open_storage(leak_run.url)
    study = optuna.load_study(study_name=NAME, storage=storage)
    storage.engine.dispose()
    stored = json.loads(study.user_attrs[SPEC_ATTR])["study"]["storage"]
    assert stored.startswith("postgresql://postgres@127.0.0.1:5432/hpstudy_test_")


@pytest.mark.slow
def test_no_log_export_report_or_copy_holds_the_password(leak_run: LeakRun) -> None:
    logs = list((leak_run.folder / "hpstudy-logs" / NAME).glob("worker-*.log"))
    assert len(logs) == 2
    written = [leak_run.folder / "best.toml", leak_run.folder / "report.html", leak_run.copy]
    assert all(path.is_file() for path in written)
    assert files_holding(leak_run.folder, leak_run.secret) == []


@pytest.mark.slow
def test_nothing_printed_holds_the_password(leak_run: LeakRun) -> None:
    leaked = [name for name, text in leak_run.printed.items() if leak_run.secret in text]
    assert leaked == []


@pytest.mark.slow
def test_a_url_without_password_runs_with_the_password_in_pgpassfile(
    tmp_path: Path, postgres_url: str, digits_spec: Callable[..., Path]
) -> None:
    secret = f"Pw{uuid.uuid4().hex[:12]}"
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"127.0.0.1:5432:*:postgres:{secret}\n")
    passfile.chmod(0o600)
    spec = digits_spec(tmp_path, name=NAME, n_trials=1, epochs=1)
    # No storage in the spec: HPSTUDY_STORAGE is the default.
    text = "\n".join(line for line in spec.read_text().splitlines() if "storage" not in line)
    spec.write_text(text)
    env = {"HPSTUDY_STORAGE": postgres_url, "PGPASSFILE": str(passfile)}
    output = finish(hpstudy("run", str(spec), cwd=tmp_path, env=env))
    assert "1 complete" in output or "complete 1" in output or "trials 1/1" in output, output
    assert secret not in dump_database(postgres_url)
    assert files_holding(tmp_path, secret) == [passfile]
