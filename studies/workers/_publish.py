"""What each trial shows in optuna-dashboard: its learning-curve picture and a note.

`TrialPublisher` is a `TrialFinisher`: when a trial ends (completed, pruned or diverged) it
uploads the trial's learning-curve picture as an Optuna artifact and saves a Markdown note with
its diagnosis; optuna-dashboard shows both in the trial's view.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from studies.analysis import Diagnosis, epoch_scores, plot_learning_curves
from studies.storage import TrialAttrs

if TYPE_CHECKING:
    from studies.storage import ArtifactStore
    from trainer import EpochResult, TrainConfig

_log = logging.getLogger("hpstudy.dashboard")

CURVES_FILENAME = "learning-curves.png"  # the artifact's name in the dashboard


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
            self.publish(trial, epochs, reason, fractions=config.fractions)
        except Exception as exc:
            _log.warning("trial %d: no learning-curve artifact or note: %r", trial.number, exc)

    def publish(
        self,
        trial: optuna.Trial,
        epochs: Sequence[EpochResult],
        reason: str,
        *,
        fractions: Sequence[float] = (),
    ) -> None:
        """Uploads the picture and saves the note (`fractions`: the config's)."""
        from optuna_dashboard import save_note

        attrs = TrialAttrs.of(trial)
        labels, best_epoch = attrs.diagnosis, attrs.best_epoch
        png = plot_learning_curves(
            epochs,
            best_epoch=best_epoch,
            title=f"trial {trial.number}: {', '.join(labels) or reason}",
            pretraining=attrs.pretraining,
            folds=(attrs.folds or {}).get("curves", ()),
        )
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / CURVES_FILENAME
            path.write_bytes(png)
            artifact_id = optuna.artifacts.upload_artifact(
                artifact_store=self.artifact_store, file_path=str(path), study_or_trial=trial
            )
        diagnosis = Diagnosis.from_dict({"labels": labels, "numbers": attrs.diagnosis_numbers})
        note = trial_note(
            trial.number,
            epochs,
            reason,
            best_epoch,
            diagnosis,
            folds=attrs.folds,
            where=attrs.where,
            fractions=fractions,
        )
        save_note(trial, f"{note}\n\n![learning curves]({artifact_url(trial, artifact_id)})\n")


def trial_note(
    number: int,
    epochs: Sequence[EpochResult],
    reason: str,
    best_epoch: int | None,
    diagnosis: Diagnosis,
    *,
    folds: Mapping[str, Any] | None = None,
    where: str | None = None,
    fractions: Sequence[float] = (),
) -> str:
    """The Markdown note of a trial: how it ended, where it trained ("host/cuda:0"), its best
    epoch, its folds' values (a trial of several networks, whose curve is their mean), what
    its steps count (with `fractions`, the config's), and its diagnosis."""
    whole = sum(1 for e in epochs if not e.partial)
    points = len(epochs) - whole
    inside = f" and {points} point(s) inside the first" if points else ""
    lines = [f"### Trial {number}: {reason} after {whole} epochs{inside}", ""]
    if where:
        lines += [f"Trained on {where}.", ""]
    best = next((e for e in epochs if e.epoch == best_epoch and not e.partial), None)
    if best is not None:
        lines += [f"Best epoch {best.epoch}: {epoch_scores(best.to_dict())}.", ""]
    if folds:
        lines += [f"Networks ({folds_text(folds)}); the curves are their mean.", ""]
    if fractions:
        shares = ", ".join(f"{f:g}" for f in fractions)
        end = round(1 / fractions[0])
        lines += [
            f"Scored inside the first epoch too, at {shares} of it (hollow in the picture); "
            f"the intermediate values' steps count {fractions[0]:.3g} of an epoch trained "
            f"(step {end} ends epoch 0).",
            "",
        ]
    if diagnosis.labels:
        lines += [diagnosis.note(), ""]
    return "\n".join(lines).rstrip()


def folds_text(folds: Mapping[str, Any]) -> str:
    """ "5 fold(s) x 1 seed: dev_loss 0.1234 ± 0.0100 (0.1100, 0.1200, ...); best epochs 7, 9, ...",
    from a trial's `folds` attribute."""
    values = ", ".join(f"{v:.4f}" for v in folds["values"])
    best = ", ".join("-" if e is None else str(e) for e in folds["best_epochs"])
    seeds = "seed" if folds["repeats"] == 1 else "seeds"
    return (
        f"{folds['folds']} fold(s) x {folds['repeats']} {seeds}: {folds['metric']} "
        f"{folds['mean']:.4f} ± {folds['std']:.4f} ({values}); best epochs {best}"
    )


def artifact_url(trial: optuna.Trial, artifact_id: str) -> str:
    """Where optuna-dashboard serves a trial's artifact, relative to its root."""
    storage = trial.storage
    study_id = storage.get_study_id_from_name(trial.study.study_name)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
    return f"/artifacts/{study_id}/{trial_id}/{artifact_id}"
