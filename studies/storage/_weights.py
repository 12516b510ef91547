"""The trained weights of a study's best trials, kept in the study database.

When a trial completes, its best epoch's weights (a PyTorch state dict) are offered to the
study's `WeightStore`: they are kept when the trial is among the best `keep` of the study, as a
study artifact `weights-trial-N.pt` that optuna-dashboard lists for download, and indexed in
`hpstudy_weights`. A trial that falls out of the best `keep` as better ones finish has its
weights deleted, artifact and index row alike, so the database holds at most `keep` sets of
weights per study (briefly `keep + 1` while two workers offer at once).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path

import optuna
import sqlalchemy as sa
from optuna.artifacts.exceptions import ArtifactNotFound

from studies.storage._artifacts import DatabaseArtifactStore
from studies.storage._locks import retry_locked
from studies.storage._optuna import ARTIFACT_META_PREFIX
from studies.storage._tables import WEIGHTS, ensure_tables

KEEP = 3  # sets of weights a study keeps unless its spec says otherwise


def weights_filename(trial: int) -> str:
    return f"weights-trial-{trial}.pt"


class WeightStore:
    """The kept weights of one study."""

    def __init__(
        self,
        engine: sa.Engine,
        storage: optuna.storages.BaseStorage,
        study_id: int,
        *,
        maximize: bool = False,
    ) -> None:
        self.engine, self.storage, self.study_id = engine, storage, study_id
        self.maximize = maximize
        self.artifacts = DatabaseArtifactStore(engine)
        ensure_tables(engine)

    def offer(
        self, study: optuna.Study, trial: int, value: float, state: bytes, *, keep: int = KEEP
    ) -> bool:
        """Keeps a completed trial's weights when it is among the best `keep`.

        Returns:
            Whether they were kept (they may be dropped later, as better trials finish).
        """
        if keep < 1 or not self._would_keep(value, keep):
            return False
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / weights_filename(trial)
            path.write_bytes(state)
            artifact_id = optuna.artifacts.upload_artifact(
                artifact_store=self.artifacts,
                file_path=str(path),
                study_or_trial=study,
                mimetype="application/octet-stream",  # a torch.save file
            )

        def insert() -> None:
            with self.engine.begin() as connection:
                connection.execute(WEIGHTS.delete().where(self._key(trial)))
                connection.execute(
                    WEIGHTS.insert().values(
                        study_id=self.study_id, trial=trial, value=value, artifact_id=artifact_id
                    )
                )

        retry_locked(insert)
        for dropped in self._beyond(keep):
            self._drop(*dropped)
        return any(t == trial for t, _ in self.kept())

    def kept(self) -> list[tuple[int, str]]:
        """(trial number, artifact id) of the kept weights, best first."""
        order = WEIGHTS.c.value.desc() if self.maximize else WEIGHTS.c.value.asc()
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(WEIGHTS.c.trial, WEIGHTS.c.artifact_id)
                .where(WEIGHTS.c.study_id == self.study_id)
                .order_by(order, WEIGHTS.c.trial)
            ).all()
        return [(int(trial), str(artifact)) for trial, artifact in rows]

    def read(self, trial: int) -> bytes | None:
        """A trial's kept weights (state-dict bytes), or None."""
        found = dict(self.kept()).get(trial)
        if found is None:
            return None
        with self.artifacts.open_reader(found) as reader:
            return reader.read()

    def _would_keep(self, value: float, keep: int) -> bool:
        with self.engine.connect() as connection:
            values = connection.execute(
                sa.select(WEIGHTS.c.value).where(WEIGHTS.c.study_id == self.study_id)
            ).scalars()
            ranked = sorted(values, reverse=self.maximize)
        if len(ranked) < keep:
            return True
        worst = ranked[keep - 1]
        return value > worst if self.maximize else value < worst

    def _beyond(self, keep: int) -> list[tuple[int, str]]:
        return self.kept()[keep:]

    def _drop(self, trial: int, artifact_id: str) -> None:
        """Deletes a trial's weights: the bytes, the dashboard's entry, the index row."""

        def delete() -> None:
            with self.engine.begin() as connection:
                connection.execute(WEIGHTS.delete().where(self._key(trial)))

        retry_locked(delete)
        with contextlib.suppress(ArtifactNotFound):  # another worker dropped it first
            self.artifacts.remove(artifact_id)
        # How optuna-dashboard deletes a study artifact: its metadata set to null.
        self.storage.set_study_system_attr(
            self.study_id, ARTIFACT_META_PREFIX + artifact_id, json.dumps(None)
        )

    def _key(self, trial: int) -> sa.ColumnElement[bool]:
        return (WEIGHTS.c.study_id == self.study_id) & (WEIGHTS.c.trial == trial)
