"""Storage URLs -> Optuna storages and SQLAlchemy engines, with SQLite made fit for workers.

SQLite is switched to WAL mode (readers never block the writer), every connection waits for a
lock instead of failing at once, and commits skip the fsync that WAL mode does not need for
consistency (`synchronous=NORMAL`: a power cut may lose the last commits, never the file).

A URL reaches SQLAlchemy as the user wrote it: `postgresql://` means psycopg 3, the driver
SQLAlchemy 2 reads it as and hpstudy installs, so the same URL opens in `optuna`,
`optuna-dashboard` and pandas; `postgresql+psycopg2://` keeps psycopg2. psycopg 3's server-side
prepared statements are turned off on every engine hpstudy makes (see `engine_kwargs`).
"""

from __future__ import annotations

import os
import re
import sqlite3
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from studies._errors import ParameterError, StudyError
from studies.spec import DEFAULT_STORAGE, ENV_PREFIX, STORAGE_ENV

CONNECT_TIMEOUT = 10  # seconds to reach a database server before giving up
SQLITE_BUSY_TIMEOUT = 60.0  # seconds a SQLite connection waits for a lock before failing
TOO_MANY_CLIENTS = "too many clients"  # PostgreSQL's refusal once max_connections are used
# The pip name of a driver module whose name differs, for the error that asks to install it.
DRIVER_PACKAGES = {"psycopg": "psycopg[binary]", "psycopg2": "psycopg2-binary"}


# scheme://user:password@ inside any text: what `strip_passwords` removes from stored values.
_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^:/@\s\"']*):[^@\s\"']*@", re.IGNORECASE)


def resolve_storage(value: str | None = None) -> str:
    """The storage URL that a `--storage` value, a spec's `storage` or an API argument means.

    `env:NAME` is the URL held by environment variable NAME, so a password stays out of argv,
    specs and shell history. No value (None or "") means `$HPSTUDY_STORAGE` when that is set,
    else `sqlite:///hpstudy.db`. Any other value is a URL and comes back unchanged, so a value
    resolved once may be resolved again.

    Raises:
        StudyError: for an `env:` variable that is unset or empty, naming it and the fix.
    """
    if not value:
        return os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE
    if not value.startswith(ENV_PREFIX):
        return value
    name = value.removeprefix(ENV_PREFIX)
    url = os.environ.get(name, "").strip()
    if not url:
        state = "empty" if name in os.environ else "not set"
        raise ParameterError(
            f"storage {value}: the environment variable {name or '(none named)'} is {state}; "
            f"set it to the study's database URL (e.g. export {name or STORAGE_ENV}="
            f"postgresql://user@host:5432/dbname, its password in ~/.pgpass or PGPASSWORD), "
            f"or give `storage=URL`"
        )
    if url.startswith(ENV_PREFIX):
        raise StudyError(
            f"storage {value}: ${name} holds '{url}'; it must hold the database URL itself"
        )
    return url


def public_url(url: str) -> str:
    """The URL without its password, for what hpstudy stores (specs, exports, provenance).

    Unlike `redact` ("user:***@"), nothing is left of the password; libpq finds it again in
    PGPASSWORD or ~/.pgpass, so the stored URL is still one a reader can use.
    """
    if url.startswith(ENV_PREFIX):
        return url
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return strip_passwords(url)
    if parsed.password is None:
        return url
    # URL.set(password=None) keeps the password: None there means "unchanged".
    return URL.create(
        parsed.drivername,
        username=parsed.username,
        host=parsed.host,
        port=parsed.port,
        database=parsed.database,
        query=parsed.query,
    ).render_as_string(hide_password=False)


def strip_passwords(text: str) -> str:
    """`text` with the password taken out of every `scheme://user:password@` in it."""
    return _PASSWORD.sub(r"\g<head>@", text)


def parse_url(url: str) -> URL:
    """Parses a storage URL.

    Raises:
        StudyError: when `url` is not a database URL.
    """
    try:
        return make_url(url)
    except (ArgumentError, ValueError):
        raise StudyError(
            f"'{url}' is not a database URL; use e.g. sqlite:///hpstudy.db or "
            f"postgresql://user@host:5432/dbname"
        ) from None


def sqlite_path(url: str) -> Path | None:
    """The database file of a sqlite URL; None for other databases or in-memory SQLite."""
    parsed = parse_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def prepare_sqlite(url: str) -> None:
    """Creates the file's folder and turns on WAL mode (a property of the file, kept)."""
    path = sqlite_path(url)
    if path is None:
        return
    if not path.parent.is_dir():
        raise StudyError(f"cannot create {path}: the folder {path.parent} does not exist")
    try:
        with sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT) as connection:
            connection.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error as exc:
        raise StudyError(f"cannot open the SQLite database {path}: {exc}") from None


def engine_kwargs(url: str) -> dict[str, object]:
    """SQLAlchemy engine arguments: a busy timeout for SQLite, liveness checks for servers.

    On psycopg 3 they also turn off server-side prepared statements (`prepare_threshold=None`).
    psycopg 3 prepares a statement on the server once a connection has run it a few times (5 by
    default) and runs it by name afterwards. Behind PgBouncer in transaction mode (before 1.21,
    or with `max_prepared_statements = 0`) the next transaction may get another server
    connection, where that name is missing or names another client's statement, and the query
    fails. A URL does not say whether it points at a pooler (PgBouncer listens on any host and
    port), so they are off on every psycopg 3 engine, as psycopg2 never used them. Preparing
    would save about half a millisecond per repeated statement (measured on a busy 2-core
    machine), small beside a trial's training; benchmarks/RESULTS.md ("psycopg 3 (issue 27)")
    compares the two drivers at 64 and 256 workers.
    """
    parsed = parse_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT}}
    if backend == "postgresql":
        # A host that drops packets would otherwise hang the command for minutes.
        connect_args: dict[str, object] = {"connect_timeout": CONNECT_TIMEOUT}
        if parsed.get_driver_name() == "psycopg":
            connect_args["prepare_threshold"] = None
        return {"pool_pre_ping": True, "connect_args": connect_args}
    return {"pool_pre_ping": True}


def create_engine(url: str) -> sqlalchemy.Engine:
    """An engine on the study database, for the project's own tables."""
    prepare_sqlite(url)
    try:
        engine = sqlalchemy.create_engine(url, **engine_kwargs(url))
    except ImportError as exc:
        raise _missing_driver(url, exc) from None
    _tune_sqlite(engine)
    return engine


def _missing_driver(url: str, exc: ImportError) -> StudyError:
    """The error for a URL whose driver is not installed (Optuna re-raises it without a name)."""
    cause: BaseException | None = exc
    while cause is not None and not getattr(cause, "name", None):
        cause = cause.__cause__
    module = getattr(cause, "name", None) or str(exc)
    return StudyError(
        f"the storage {redact(url)} needs the database driver {module}, which is not "
        f"installed: pip install '{DRIVER_PACKAGES.get(module, module)}', or name an installed "
        f"driver in the URL (postgresql:// is psycopg 3, postgresql+psycopg2:// psycopg2)"
    )


def _tune_sqlite(engine: sqlalchemy.Engine) -> None:
    """Sets `synchronous=NORMAL` on every new SQLite connection of `engine`."""
    if engine.dialect.name != "sqlite":
        return

    def on_connect(connection: Any, _record: Any) -> None:
        connection.execute("PRAGMA synchronous=NORMAL")

    sqlalchemy.event.listen(engine, "connect", on_connect)
    engine.dispose()  # connections opened before the listener was there


def open_storage(
    url: str,
    *,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    stale_trial_callback: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage on `url`; with `heartbeat_interval`, a worker's, with heartbeats.

    Args:
        url: any SQLAlchemy URL Optuna accepts.
        heartbeat_interval: seconds between heartbeats; None (readers) turns them off.
        grace_period: seconds of silence after which a running trial counts as dead.
        stale_trial_callback: what happens to a dead worker's trial once it is failed.

    Raises:
        StudyError: for a bad URL or a database that cannot be reached, with the fix.
    """
    parse_url(url)
    prepare_sqlite(url)
    heartbeat = {}
    if heartbeat_interval is not None:
        heartbeat = {
            "heartbeat_interval": heartbeat_interval,
            "grace_period": grace_period,
            "heartbeat_stale_trial_callback": stale_trial_callback,
        }
    try:
        with warnings.catch_warnings():
            # Heartbeats are "experimental" in Optuna; hpstudy relies on them by design.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs(url),
                skip_compatibility_check=True,  # check_schema does, one connection at a time
                **heartbeat,  # type: ignore[arg-type]
            )
        _tune_sqlite(storage.engine)
        check_schema(storage)
        return storage
    except ImportError as exc:
        raise _missing_driver(url, exc) from None
    except (OperationalError, SQLAlchemyError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        if TOO_MANY_CLIENTS in reason:
            raise ParameterError(
                f"the storage {redact(url)} refused a connection: {reason}. PostgreSQL's "
                f"max_connections (100 by default) is used up; each worker holds 2 to 3. For "
                f"more workers, put PgBouncer in transaction mode in front of the server and "
                f"point `storage` at it (README: Hundreds of workers: PgBouncer)."
            ) from None
        raise StudyError(
            f"cannot reach the storage {redact(url)}: {reason}. Check that the database server "
            f"is running and the URL (host, port, user, database name) is right."
        ) from None


def check_schema(storage: optuna.storages.RDBStorage) -> None:
    """Refuses a database whose Optuna schema this Optuna cannot use, as `RDBStorage` would.

    Optuna's own check reads the schema's version in an open transaction and, inside it, opens
    a second connection for the migration revision. Behind PgBouncer in transaction mode that
    transaction holds a server connection: hundreds of workers starting at once each held one
    and waited for another, until none was left (a deadlock). This check holds one connection
    at a time. (Optuna creates its tables where they are missing, one connection too.)

    Raises:
        StudyError: naming both schema versions and the fix.
    """
    current = storage.get_current_version()
    head = _head_version(storage)
    if current == head:
        return
    if current in storage.get_all_versions():
        fix = f"upgrade the database: optuna storage upgrade --storage {redact(storage.url)}"
    else:
        fix = "it was made by a newer Optuna: install that release (pip install -U optuna)"
    raise StudyError(
        f"the study database {redact(storage.url)} has Optuna schema {current}; Optuna "
        f"{optuna.__version__} needs {head}. To use it, {fix}"
    )


_HEAD: list[str] = []  # the installed Optuna's schema version, read once from its scripts


def _head_version(storage: optuna.storages.RDBStorage) -> str:
    if not _HEAD:
        _HEAD.append(storage.get_head_version())
    return _HEAD[0]


def require_database(url: str) -> None:
    """Refuses a SQLite URL whose file does not exist, for commands that only read a study.

    Raises:
        StudyError: naming the missing file and how to make or name one.
    """
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        raise ParameterError(
            f"there is no study database at {path}; run a study first (hpstudy run SPEC) "
            f"or name its database with `storage=URL`"
        )


def redact(url: str) -> str:
    """The URL with its password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return url
