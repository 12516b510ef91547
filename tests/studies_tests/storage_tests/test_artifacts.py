"""The artifact store in the study database, and the learning-curve pictures stored in it.

One contract test class runs against SQLite and, when the local server is there, PostgreSQL:
the two databases workers use.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.artifacts.exceptions import ArtifactNotFound

from studies.analysis import curve_axis, plot_learning_curves
from studies.storage import DatabaseArtifactStore, create_engine, open_storage
from trainer import EpochResult

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'artifacts.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(url: str) -> Iterator[DatabaseArtifactStore]:
    engine = create_engine(url)
    yield DatabaseArtifactStore(engine)
    engine.dispose()


class TestDatabaseArtifactStore:
    """Optuna's ArtifactStore contract, on each database."""

    def test_reads_back_what_was_written(self, store: DatabaseArtifactStore) -> None:
        store.write("a1", io.BytesIO(b"\x00picture\xff" * 1000))
        with store.open_reader("a1") as reader:
            assert reader.read() == b"\x00picture\xff" * 1000

    def test_a_second_write_replaces_the_first(self, store: DatabaseArtifactStore) -> None:
        store.write("a1", io.BytesIO(b"old"))
        store.write("a1", io.BytesIO(b"new"))
        assert store.open_reader("a1").read() == b"new"

    def test_an_unknown_id_is_not_found(self, store: DatabaseArtifactStore) -> None:
        with pytest.raises(ArtifactNotFound):
            store.open_reader("nope")

    def test_remove_deletes_and_then_reports_not_found(self, store: DatabaseArtifactStore) -> None:
        store.write("a1", io.BytesIO(b"x"))
        store.remove("a1")
        with pytest.raises(ArtifactNotFound):
            store.open_reader("a1")
        with pytest.raises(ArtifactNotFound):
            store.remove("a1")

    def test_optuna_uploads_and_downloads_through_it(
        self, store: DatabaseArtifactStore, url: str, tmp_path: Path
    ) -> None:
        study = optuna.create_study(storage=open_storage(url))
        source = tmp_path / "curve.png"
        source.write_bytes(PNG_MAGIC + b"rest")
        artifact_id = optuna.artifacts.upload_artifact(
            artifact_store=store, file_path=str(source), study_or_trial=study
        )
        target = tmp_path / "back.png"
        optuna.artifacts.download_artifact(
            artifact_store=store, file_path=str(target), artifact_id=artifact_id
        )
        assert target.read_bytes() == source.read_bytes()
        (meta,) = optuna.artifacts.get_all_artifact_meta(study)
        assert meta.mimetype == "image/png"

    def test_two_stores_on_one_database_share_artifacts(
        self, store: DatabaseArtifactStore, url: str
    ) -> None:
        store.write("shared", io.BytesIO(b"seen by the dashboard"))
        other = create_engine(url)  # a worker on another machine, or the dashboard
        try:
            assert DatabaseArtifactStore(other).open_reader("shared").read() == (
                b"seen by the dashboard"
            )
        finally:
            other.dispose()


def epoch(i: int, train_loss: float, dev_loss: float, fraction: float = 1.0) -> EpochResult:
    return EpochResult(
        fraction=fraction,
        epoch=i,
        train_loss=train_loss,
        train_accuracy=1 - train_loss / 3,
        dev_loss=dev_loss,
        dev_accuracy=1 - dev_loss / 3,
        lr=0.1,
        grad_norm_mean={},
        grad_norm_max={},
        seconds=0.01,
    )


def test_learning_curves_are_a_png() -> None:
    records = [epoch(i, 2.0 / (i + 1), 2.0 / (i + 1) + 0.1 * i) for i in range(5)]
    png = plot_learning_curves(records, best_epoch=2, title="trial 0: overfitting")
    assert png.startswith(PNG_MAGIC)
    assert 5_000 < len(png) < 200_000


def test_learning_curves_survive_a_diverged_run() -> None:
    records = [epoch(0, 2.3, 2.2), epoch(1, 1e6, 3e5), epoch(2, math.nan, math.inf)]
    assert plot_learning_curves(records, best_epoch=0).startswith(PNG_MAGIC)


def test_learning_curves_without_a_best_epoch() -> None:
    assert plot_learning_curves([epoch(0, math.nan, math.nan)]).startswith(PNG_MAGIC)


def test_points_inside_the_first_epoch_are_drawn_at_the_epochs_trained() -> None:
    records = [epoch(0, 2.2, 2.2, 1 / 9), epoch(0, 2.0, 2.0, 1 / 3), epoch(0, 1.0, 1.1)]
    records += [epoch(1, 0.8, 0.9)]
    x, label = curve_axis(records)
    assert [round(v, 2) for v in x] == [0.11, 0.33, 1.0, 2.0]
    assert label == "epochs trained"
    assert plot_learning_curves(records, best_epoch=1).startswith(PNG_MAGIC)


def test_a_curve_of_whole_epochs_is_drawn_at_the_epoch() -> None:
    assert curve_axis([epoch(0, 1.0, 1.0), epoch(1, 0.5, 0.5)]) == ([0.0, 1.0], "epoch")
