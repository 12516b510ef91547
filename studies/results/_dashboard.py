"""`hpstudy dashboard`: optuna-dashboard on the study database, with hpstudy's artifacts."""

from __future__ import annotations

import socket
from collections.abc import Callable

from studies._errors import ParameterError
from studies.results._read import open_database
from studies.storage import (
    DatabaseArtifactStore,
    create_engine,
    redact,
)

DEFAULT_HOST = "127.0.0.1"  # this machine only: the dashboard has no login and can delete studies
DEFAULT_PORT = 8080
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def serve(
    url: str | None,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    echo: Callable[[str], None] = print,
) -> None:
    """Runs optuna-dashboard on the study database `url` (or `env:NAME`) until interrupted.

    Raises:
        StudyError: for a SQLite file that does not exist, an unreachable database, or an
            address that cannot be listened on.
    """
    url, storage = open_database(url)
    artifact_store = DatabaseArtifactStore(create_engine(url))
    shown = socket.gethostname() if host in ("0.0.0.0", "::") else host
    shown = f"[{shown}]" if ":" in shown else shown
    echo(f"optuna-dashboard on {redact(url)}: http://{shown}:{port}/dashboard/")
    if host in LOCAL_HOSTS:
        echo(
            f"it listens on {host} only (this machine); host 0.0.0.0 opens it to the network, "
            f"where anyone can see and delete studies: it has no login"
        )
    else:
        echo(
            f"warning: it listens on {host}: whoever reaches this machine on port {port} can "
            f"see and delete the studies (the dashboard has no login)"
        )
    echo("stop it with Ctrl-C")
    from optuna_dashboard import run_server

    try:
        run_server(storage, host=host, port=port, artifact_store=artifact_store)
    except OSError as exc:
        raise ParameterError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another `port`, "
            f"or stop what uses it"
        ) from None
