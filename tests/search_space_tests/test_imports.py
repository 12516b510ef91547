from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import search_space

ROOT = Path(__file__).resolve().parents[2]


def test_import_needs_no_torch_trainer_or_studies() -> None:
    code = (
        "import search_space, sys; "
        "loaded = {'torch', 'trainer', 'studies'} & set(sys.modules); "
        "assert not loaded, loaded"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_all_names_are_exported() -> None:
    assert all(hasattr(search_space, name) for name in search_space.__all__)
