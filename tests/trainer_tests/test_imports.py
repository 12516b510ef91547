from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import trainer

ROOT = Path(__file__).resolve().parents[2]


def test_import_never_loads_optuna_or_the_other_packages() -> None:
    code = (
        "import trainer, sys; "
        "loaded = {'optuna', 'studies', 'search_space'} & set(sys.modules); "
        "assert not loaded, loaded"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_all_names_are_exported() -> None:
    assert all(hasattr(trainer, name) for name in trainer.__all__)
    assert sorted(trainer.__all__) == sorted(set(trainer.__all__))


def test_validating_a_config_loads_neither_torch_nor_user_code() -> None:
    code = (
        "import sys; from trainer import TrainConfig; "
        "TrainConfig(model='not_imported_models:build', model_args={'width': 8}, "
        "dataset='t.csv', target='y', task='regression', monitor='dev_r2', standardize=True); "
        "loaded = {'torch', 'numpy', 'not_imported_models'} & set(sys.modules); "
        "assert not loaded, loaded"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_result_records_load_without_torch() -> None:
    # studies reads stored epochs and range tests back in commands that never train
    code = "import sys; from trainer import EpochResult, LRRange; assert 'torch' not in sys.modules"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
