"""An Optuna artifact store in the study database, so one database holds everything.

Optuna's own stores keep artifacts in a folder or a bucket; a worker on another machine would
need that folder too. `DatabaseArtifactStore` keeps them in the table `hpstudy_artifacts` of the
database the workers already share, and optuna-dashboard reads them from there.
"""

from __future__ import annotations

import io
from typing import BinaryIO

import sqlalchemy as sa
from optuna.artifacts.exceptions import ArtifactNotFound

from studies.storage._tables import ARTIFACTS, ensure_tables


class DatabaseArtifactStore:
    """Optuna's `ArtifactStore` protocol over the `hpstudy_artifacts` table.

    Artifacts are small (learning-curve PNGs of tens of kB), so each is read and written
    whole in one short transaction.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        ensure_tables(engine)

    def open_reader(self, artifact_id: str) -> BinaryIO:
        """The artifact's bytes as a binary file.

        Raises:
            ArtifactNotFound: for an unknown id.
        """
        with self.engine.connect() as connection:
            content = connection.execute(
                sa.select(ARTIFACTS.c.content).where(ARTIFACTS.c.artifact_id == artifact_id)
            ).scalar()
        if content is None:
            raise ArtifactNotFound(f"no artifact '{artifact_id}' in the study database")
        return io.BytesIO(content)

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        """Stores the file's bytes under `artifact_id`, replacing an earlier artifact."""
        content = content_body.read()
        with self.engine.begin() as connection:
            connection.execute(ARTIFACTS.delete().where(ARTIFACTS.c.artifact_id == artifact_id))
            connection.execute(ARTIFACTS.insert().values(artifact_id=artifact_id, content=content))

    def remove(self, artifact_id: str) -> None:
        """Deletes the artifact.

        Raises:
            ArtifactNotFound: for an unknown id.
        """
        with self.engine.begin() as connection:
            deleted = connection.execute(
                ARTIFACTS.delete().where(ARTIFACTS.c.artifact_id == artifact_id)
            ).rowcount
        if not deleted:
            raise ArtifactNotFound(f"no artifact '{artifact_id}' in the study database")
