"""Reading a study's results back for export, reproduce and report: trials, configs, epochs."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

import optuna

from studies._errors import StudyError
from studies.storage import (
    EpochStore,
    StudyAttrs,
    TrialAttrs,
    create_engine,
    load_study,
    open_storage,
    require_database,
    resolve_storage,
)
from trainer import ConfigError, EpochResult, TrainConfig

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


@dataclasses.dataclass(frozen=True)
class OpenStudy:
    """A study opened for reading, with the storage and URL it came from."""

    study: optuna.Study
    storage: optuna.storages.BaseStorage
    url: str

    def search_path(self, trial: optuna.trial.FrozenTrial) -> tuple[str, ...]:
        """Where a trial's relative model and data paths resolve: the spec's folder, then
        the folder its model file was in."""
        spec = StudyAttrs.of(self.study).spec
        folder = spec.folder if spec else None
        source = (TrialAttrs.of(trial).model or {}).get("source")
        folders = [f for f in (folder, source and str(Path(source).parent)) if f]
        return tuple(dict.fromkeys(folders))

    def epochs(
        self, numbers: Iterable[int], *, partials: bool = False
    ) -> dict[int, list[EpochResult]]:
        """The stored per-epoch records of the trials `numbers`, oldest epoch first; with
        `partials`, also the points scored inside the first epoch (`fraction` < 1), each
        before the whole epoch."""
        study_id = self.storage.get_study_id_from_name(self.study.study_name)
        engine = create_engine(self.url)
        try:
            store = EpochStore(engine)
            return {
                number: store.epochs(
                    self.storage.get_trial_id_from_study_id_trial_number(study_id, number),
                    partials=partials,
                )
                for number in numbers
            }
        finally:
            engine.dispose()


def open_database(url: str | None = None) -> tuple[str, optuna.storages.BaseStorage]:
    """The database a reading command names, as a URL and a storage; never creates one.

    Args:
        url: a database URL or `env:NAME`; None: $HPSTUDY_STORAGE, else sqlite:///hpstudy.db.

    Raises:
        StudyError: for a SQLite file that does not exist, an unset `env:` variable, or a
            database that cannot be reached.
    """
    url = resolve_storage(url)
    require_database(url)
    return url, open_storage(url)


def open_study(name: str, url: str | None = None) -> OpenStudy:
    """Loads study `name` from `url` for reading.

    Args:
        url: a database URL or `env:NAME`; None: $HPSTUDY_STORAGE, else sqlite:///hpstudy.db.

    Raises:
        StudyError: for a SQLite file that does not exist, an unset `env:` variable, or an
            unknown study name.
    """
    url, storage = open_database(url)
    return OpenStudy(load_study(storage, name, url=url), storage, url)


def trial_config(trial: optuna.trial.FrozenTrial) -> TrainConfig:
    """The complete config a trial trained, seed included, from its `config` user attribute.

    Raises:
        StudyError: for a trial that has not finished or was not made by hpstudy.
    """
    if trial.state not in FINISHED:
        raise StudyError(
            f"trial {trial.number} is {trial.state.name.lower()}; pick a complete or pruned "
            f"trial (hpstudy trials NAME lists them)"
        )
    values = TrialAttrs.of(trial).config
    if values is None:
        raise StudyError(f"trial {trial.number} has no stored config: it was not made by hpstudy")
    try:
        return TrainConfig.from_dict(values, source=f"the config of trial {trial.number}")
    except ConfigError as exc:
        raise StudyError(f"{exc}\n(the stored config does not load in this hpstudy)") from None
