"""Optuna's own storage contract (`StorageTestCase`) over the worker storage, on both databases.

The suite Optuna runs over its own backends runs here over `WorkerStorage` (with the settings
workers use) and, as a control, over plain `RDBStorage`, each on SQLite and on PostgreSQL.
`WorkerStorage` relaxes no guarantee the suite checks; what the suite does not cover (several
processes, the lag of another process's view) is in test_worker_storage.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa
from optuna.testing.pytest_storages import StorageTestCase

from studies.storage import WorkerStorage, open_storage
from tests.studies_tests.conftest import POSTGRES

KINDS = ("worker", "rdb")


@pytest.fixture(scope="module")
def postgres_database() -> Iterator[str]:
    """One throwaway database for the module; each test empties it (much faster than a new one)."""
    admin = sa.create_engine(f"{POSTGRES}/postgres", isolation_level="AUTOCOMMIT")
    name = f"hpstudy_contract_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server on 127.0.0.1:5432: {exc}")
    url = f"{POSTGRES}/{name}"
    open_storage(url).engine.dispose()  # Optuna's tables
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _empty(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("TRUNCATE studies RESTART IDENTITY CASCADE"))
    engine.dispose()


def _open(kind: str, url: str) -> optuna.storages.BaseStorage:
    if kind == "worker":
        return WorkerStorage(url)
    return open_storage(url)


def _close(storage: optuna.storages.BaseStorage) -> None:
    if isinstance(storage, WorkerStorage):
        storage.close()
    else:
        assert isinstance(storage, optuna.storages.RDBStorage)
        storage.engine.dispose()


@pytest.fixture(params=KINDS)
def sqlite_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    storage = _open(request.param, f"sqlite:///{tmp_path / 'contract.db'}")
    yield storage
    _close(storage)


@pytest.fixture(params=KINDS)
def postgres_storage(request: pytest.FixtureRequest, postgres_database: str) -> Iterator[object]:
    _empty(postgres_database)
    storage = _open(request.param, postgres_database)
    yield storage
    _close(storage)


class TestOnSQLite(StorageTestCase):
    @pytest.fixture
    def storage(self, sqlite_storage: optuna.storages.BaseStorage) -> optuna.storages.BaseStorage:
        return sqlite_storage


@pytest.mark.slow  # a server test: about a minute
class TestOnPostgreSQL(StorageTestCase):
    @pytest.fixture
    def storage(self, postgres_storage: optuna.storages.BaseStorage) -> optuna.storages.BaseStorage:
        return postgres_storage
