"""Storage URLs: `env:NAME` and HPSTUDY_STORAGE, URLs without their password, and libpq's own
password sources (PGPASSWORD, PGPASSFILE) left to work through hpstudy's engines."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import optuna
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
