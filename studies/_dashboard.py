"""optuna-dashboard for hpstudy: what each trial shows there, and `hpstudy dashboard`.

`TrialPublisher` is a `TrialFinisher`: when a trial ends (completed, pruned or diverged) it
uploads the trial's learning-curve picture as an Optuna artifact and saves a Markdown note with
its diagnosis; optuna-dashboard shows both in the trial's view. `serve` starts the dashboard on
the study database with the artifact store that holds the pictures.
"""

from __future__ import annotations

import logging
import socket
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import optuna

from studies._artifacts import DatabaseArtifactStore
from studies._curves import plot_learning_curves
from studies._diagnosis import Diagnosis
from studies._errors import StudyError
from studies._storage import create_engine, open_storage, redact, sqlite_path

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore

    from trainer import EpochResult, TrainConfig

_log = logging.getLogger("hpstudy.dashboard")

CURVES_FILENAME = "learning-curves.png"  # the artifact's name in the dashboard
DEFAULT_HOST = "127.0.0.1"  # this machine only: the dashboard has no login and can delete studies
DEFAULT_PORT = 8080
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


class TrialPublisher:
    """A `TrialFinisher`: the learning-curve picture as an artifact, the diagnosis as a note.

    Runs after `store_diagnosis`, whose user attributes (diagnosis, best_epoch) it reads. A
    picture that cannot be made is logged, not raised: it must not fail a trained trial.
    """

    def __init__(self, artifact_store: ArtifactStore) -> None:
        self.artifact_store = artifact_store

    def __call__(
        self, trial: optuna.Trial, config: TrainConfig, epochs: Sequence[EpochResult], reason: str
    ) -> None:
        if not epochs:
            return
        try:
            self.publish(trial, epochs, reason)
        except Exception as exc:
            _log.warning("trial %d: no learning-curve artifact or note: %r", trial.number, exc)

    def publish(self, trial: optuna.Trial, epochs: Sequence[EpochResult], reason: str) -> None:
        """Uploads the picture and saves the note."""
        from optuna_dashboard import save_note

        attrs = trial.user_attrs
        labels = attrs.get("diagnosis", [])
        best_epoch = attrs.get("best_epoch")
        png = plot_learning_curves(
            [e.to_dict() for e in epochs],
            best_epoch=best_epoch,
            title=f"trial {trial.number}: {', '.join(labels) or reason}",
        )
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / CURVES_FILENAME
            path.write_bytes(png)
            artifact_id = optuna.artifacts.upload_artifact(
                artifact_store=self.artifact_store, file_path=str(path), study_or_trial=trial
            )
        diagnosis = Diagnosis.from_dict(
            {"labels": labels, "numbers": attrs.get("diagnosis_numbers", {})}
        )
        note = trial_note(trial.number, epochs, reason, best_epoch, diagnosis)
        save_note(trial, f"{note}\n\n![learning curves]({artifact_url(trial, artifact_id)})\n")


def trial_note(
    number: int,
    epochs: Sequence[EpochResult],
    reason: str,
    best_epoch: int | None,
    diagnosis: Diagnosis,
) -> str:
    """The Markdown note of a trial: how it ended, its best epoch, and its diagnosis."""
    lines = [f"### Trial {number}: {reason} after {len(epochs)} epochs", ""]
    best = next((e for e in epochs if e.epoch == best_epoch), None)
    if best is not None:
        lines += [
            f"Best epoch {best.epoch}: dev loss {best.dev_loss:.4f}, dev accuracy "
            f"{100 * best.dev_accuracy:.2f}% (train loss {best.train_loss:.4f}, train accuracy "
            f"{100 * best.train_accuracy:.2f}%).",
            "",
        ]
    if diagnosis.labels:
        lines += [diagnosis.note(), ""]
    return "\n".join(lines).rstrip()


def artifact_url(trial: optuna.Trial, artifact_id: str) -> str:
    """Where optuna-dashboard serves a trial's artifact, relative to its root."""
    storage = trial.storage
    study_id = storage.get_study_id_from_name(trial.study.study_name)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
    return f"/artifacts/{study_id}/{trial_id}/{artifact_id}"


def serve(
    url: str,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    echo: Callable[[str], None] = print,
) -> None:
    """Runs optuna-dashboard on the study database `url` until interrupted.

    Raises:
        StudyError: for a SQLite file that does not exist, an unreachable database, or an
            address that cannot be listened on.
    """
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        raise StudyError(
            f"there is no study database at {path}; run a study first (hpstudy run digits-mlp) "
            f"or name the database with --storage URL"
        )
    storage = open_storage(url, heartbeat_interval=None)
    artifact_store = DatabaseArtifactStore(create_engine(url))
    shown = socket.gethostname() if host in ("0.0.0.0", "::") else host
    shown = f"[{shown}]" if ":" in shown else shown
    echo(f"optuna-dashboard on {redact(url)}: http://{shown}:{port}/dashboard/")
    if host in LOCAL_HOSTS:
        echo(
            f"it listens on {host} only (this machine); --host 0.0.0.0 opens it to the network, "
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
        raise StudyError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port, "
            f"or stop what uses it"
        ) from None
