"""Where a study lives: URLs and engines, the worker's storage, and the project's own tables.

Optuna's tables hold studies and trials; beside them, in the same database, hpstudy keeps per-epoch
metrics, training checkpoints, artifacts (learning-curve pictures) and the trial budget.
"""

from __future__ import annotations

from studies.spec import STORAGE_ENV
from studies.storage._artifacts import DatabaseArtifactStore
from studies.storage._budget import Budget
from studies.storage._checkpoints import Checkpoints, CheckpointTable, TrialCheckpoint
from studies.storage._copy import CopyReport, copy_study
from studies.storage._epochs import BufferedEpochStore, EpochStore
from studies.storage._front import feasible, pareto_front
from studies.storage._locks import is_lock_error, retry_locked
from studies.storage._optuna import CONSTRAINTS_ATTR, ArtifactStore, set_constraint_values
from studies.storage._provenance import Provenance
from studies.storage._queue import (
    Reached,
    TargetRecord,
    claim_once,
    enqueue_once,
    is_warm_start,
    reached_target,
)
from studies.storage._secrets import strip_stored_passwords
from studies.storage._study import (
    CODE_ATTR,
    SPEC_ATTR,
    check_code,
    create_or_resume,
    finished_trials,
    load_study,
    open_worker_storage,
    selection_maximized,
    store_heartbeat,
    stored_heartbeat,
    stored_spec,
)
from studies.storage._study_attrs import (
    GRACE_PERIOD,
    HEARTBEAT_INTERVAL,
    Heartbeat,
    StoredStudy,
    StudyAttrs,
    storable_spec,
    write_study_attrs,
)
from studies.storage._tables import METADATA, ensure_tables
from studies.storage._trial_attrs import (
    FAILED_TRIAL,
    RETRY_HISTORY,
    WORKER_ATTR,
    WORKER_DIED,
    StopReason,
    TrialAttrs,
    chain_root,
    is_retry,
    retry_history,
    retry_system_attrs,
    user_attrs_without_outcome,
    worker_of,
    write_attrs,
)
from studies.storage._urls import (
    create_engine,
    open_storage,
    parse_url,
    public_url,
    redact,
    require_database,
    resolve_storage,
    sqlite_path,
    strip_passwords,
)
from studies.storage._weights import (
    KEEP,
    WeightStore,
    fetch_weights,
    local_transfer,
    weights_filename,
)
from studies.storage._worker_storage import REFRESH, WorkerStorage
from studies.storage._write_behind import FLUSH_INTERVAL, WriteBehind

__all__ = [
    "CODE_ATTR",
    "CONSTRAINTS_ATTR",
    "FAILED_TRIAL",
    "FLUSH_INTERVAL",
    "GRACE_PERIOD",
    "HEARTBEAT_INTERVAL",
    "KEEP",
    "METADATA",
    "REFRESH",
    "RETRY_HISTORY",
    "SPEC_ATTR",
    "STORAGE_ENV",
    "WORKER_ATTR",
    "WORKER_DIED",
    "ArtifactStore",
    "Budget",
    "BufferedEpochStore",
    "CheckpointTable",
    "Checkpoints",
    "CopyReport",
    "DatabaseArtifactStore",
    "EpochStore",
    "Heartbeat",
    "Provenance",
    "Reached",
    "StopReason",
    "StoredStudy",
    "StudyAttrs",
    "TargetRecord",
    "TrialAttrs",
    "TrialCheckpoint",
    "WeightStore",
    "WorkerStorage",
    "WriteBehind",
    "chain_root",
    "check_code",
    "claim_once",
    "copy_study",
    "create_engine",
    "create_or_resume",
    "enqueue_once",
    "ensure_tables",
    "feasible",
    "fetch_weights",
    "finished_trials",
    "is_lock_error",
    "is_retry",
    "is_warm_start",
    "load_study",
    "local_transfer",
    "open_storage",
    "open_worker_storage",
    "pareto_front",
    "parse_url",
    "public_url",
    "reached_target",
    "redact",
    "require_database",
    "resolve_storage",
    "retry_history",
    "retry_locked",
    "retry_system_attrs",
    "selection_maximized",
    "set_constraint_values",
    "sqlite_path",
    "storable_spec",
    "store_heartbeat",
    "stored_heartbeat",
    "stored_spec",
    "strip_passwords",
    "strip_stored_passwords",
    "user_attrs_without_outcome",
    "weights_filename",
    "worker_of",
    "write_attrs",
    "write_study_attrs",
]
