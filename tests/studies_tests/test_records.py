"""No module of `studies` reads a stored attribute by its string key: only the records do.

A study's attributes are read through `StudyAttrs`, a trial's through `TrialAttrs` and the
helpers beside it (`chain_root`, `is_retry`, `worker_of`), so a reader and a writer cannot
drift apart. This scan keeps it so: a new `trial.user_attrs["x"]` or
`study.system_attrs.get("x")` anywhere else fails here, naming the file and line.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import studies

ROOT = Path(studies.__file__).parent
# The modules that define the records, and the storage that implements Optuna's interface
# (its `get_study_user_attrs` passes the attributes through).
RECORDS = {
    "storage/_study_attrs.py",
    "storage/_trial_attrs.py",
    "storage/_worker_storage.py",
}
ATTRS = r"\b(?:user|system)_attrs"
READS = re.compile(
    "|".join(
        (
            ATTRS + r"\s*\[",  # attrs["key"], attrs[KEY]
            ATTRS + r"\.get\(",  # attrs.get("key")
            r"""["'][\w:.-]+["']\s+(?:not\s+)?in\s+[\w.]*""" + ATTRS,  # "key" in attrs
            r"\bget_(?:study|trial)_(?:user|system)_attrs\(",  # storage.get_study_user_attrs(
        )
    )
)


def reads(text: str) -> list[tuple[int, str]]:
    """Each line of `text` that reads an attribute by key, with its number."""
    return [
        (number, line.strip())
        for number, line in enumerate(text.splitlines(), start=1)
        if READS.search(line)
    ]


@pytest.mark.parametrize(
    "path",
    sorted(p for p in ROOT.rglob("*.py") if str(p.relative_to(ROOT)) not in RECORDS),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_no_module_reads_an_attribute_by_key(path: Path) -> None:
    found = reads(path.read_text())
    assert not found, (
        f"{path.relative_to(ROOT)} reads stored attributes by key (use StudyAttrs.of, "
        f"TrialAttrs.of or a helper of studies/storage/_trial_attrs.py): {found}"
    )


@pytest.mark.parametrize(
    "line",
    [
        'best = trial.user_attrs["best_epoch"]',
        "seed = t.user_attrs.get('seed')",
        'if "diagnosis" in trial.user_attrs:',
        "root = trial.system_attrs.get(FAILED)",
        "attrs = storage.get_study_user_attrs(study_id)",
    ],
)
def test_the_scan_sees_a_read_by_key(line: str) -> None:
    assert reads(line) == [(1, line)]


@pytest.mark.parametrize(
    "line",
    [
        "attrs = TrialAttrs.of(trial)",
        "user_attrs=user_attrs_without_outcome(trial.user_attrs),",
        "kept = {k: v for k, v in trial.system_attrs.items() if k != WORKER_ATTR}",
        "study.set_user_attr(key, value)",
    ],
)
def test_the_scan_leaves_passing_attributes_on_alone(line: str) -> None:
    assert reads(line) == []
