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
import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy as sa
from optuna.artifacts.exceptions import ArtifactNotFound

from studies._errors import StudyError
from studies.storage._artifacts import DatabaseArtifactStore
from studies.storage._locks import retry_locked
from studies.storage._optuna import ARTIFACT_META_PREFIX
from studies.storage._study import load_study, selection_maximized
from studies.storage._tables import WEIGHTS, ensure_tables
from studies.storage._urls import (
    create_engine,
    open_storage,
    public_url,
    redact,
    require_database,
)
from trainer import TrainConfig, is_study_reference

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


def fetch_weights(reference: str) -> tuple[Path, dict[str, Any]]:
    """The kept weights a study reference names, in a local file: "NAME@URL" (the study's
    best kept trial) or "NAME@URL#TRIAL".

    Returns:
        The file (in a cache folder, named by the content's hash) and where it came from.

    Raises:
        StudyError: for a missing database, an unknown study, a bad trial number, or a trial
            whose weights were not kept.
    """
    name, _, rest = reference.partition("@")
    url, _, number = rest.partition("#")
    if number and not number.isdigit():
        raise StudyError(f"init_from {reference}: the trial after '#' must be a number")
    require_database(url)
    storage = open_storage(url)
    study = load_study(storage, name, url=url)
    engine = create_engine(url)
    try:
        maximize = selection_maximized(study)
        store = WeightStore(
            engine, storage, storage.get_study_id_from_name(name), maximize=maximize
        )
        kept = store.kept()
        trial = int(number) if number else (kept[0][0] if kept else -1)
        blob = store.read(trial) if trial >= 0 else None
    finally:
        engine.dispose()
        storage.engine.dispose()
    if blob is None:
        shown = ", ".join(str(t) for t, _ in kept) or "none"
        what = f"trial {trial}" if number else "any trial"
        raise StudyError(
            f"init_from {redact(reference)}: study '{name}' kept no weights of {what} "
            f"(it keeps its best study.keep_weights trials; kept now: {shown})"
        )
    digest = hashlib.sha256(blob).hexdigest()
    folder = Path(tempfile.gettempdir()) / "hpstudy-weights"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-trial-{trial}-{digest[:16]}.pt"
    if not path.is_file():
        partial = path.with_suffix(".part")
        partial.write_bytes(blob)
        partial.replace(path)
    about = {"study": name, "storage": public_url(url), "trial": trial, "sha256": digest}
    return path, about


def local_transfer(config: TrainConfig) -> tuple[TrainConfig, dict[str, Any] | None]:
    """The config to train: a study reference in `init_from` replaced by the fetched file.

    Returns:
        The config, and where the weights came from (None for a file or no init_from).
    """
    if not is_study_reference(config.init_from):
        return config, None
    path, about = fetch_weights(config.init_from)
    return config.replace(init_from=str(path)), about
