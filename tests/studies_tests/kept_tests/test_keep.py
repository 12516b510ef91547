"""A script's own factory and arrays kept in the study: packing, the artifact, loading back.

`studies.run(spec, model=build, data=(x, y))` keeps both in the study's database; these tests
take the pieces one at a time (what is pickled and hashed, what is refused, what a worker
reads back), packing (`studies.kept._pack`) and keeping (`_keep`) in one file since they
share their functions and data; test_inline_run.py runs whole studies through worker processes.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import studies
from studies.kept import (
    Kept,
    keep_inline,
    name_kept,
    pack_data,
    pack_function,
    read_kept,
    restore_for_export,
    restore_kept,
)
from studies.storage import Provenance
from trainer import TrainConfig, UserCodeError, as_arrays, load_factory, load_loader, read_arrays


def build(input_shape: tuple[int, ...], num_classes: int, hidden: int = 8) -> nn.Module:
    return nn.Sequential(
        nn.Flatten(), nn.Linear(int(np.prod(input_shape)), hidden), nn.Linear(hidden, num_classes)
    )


def scaled(x: float) -> float:
    return 3.0 * x


def other_build(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return nn.Linear(int(np.prod(input_shape)), num_classes)


def arrays(n: int = 40) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.normal(size=(n, 4)).astype(np.float32),
        "y_train": np.arange(n) % 3,
    }


def spec_with(tmp_path: Path, **train: Any) -> studies.StudySpec:
    return studies.spec_of(
        name_kept(
            {
                "study": {"name": "kept", "n_trials": 1, "storage": f"sqlite:///{tmp_path}/k.db"},
                "train": {"epochs": 1, **train},
                "space": {"lr": {"low": 0.01, "high": 0.1}},
            },
            model=True,
            data=True,
        )
    )


def in_main(source: str, name: str) -> Any:
    """A function defined as a script's `__main__` or a notebook cell defines it."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(source, namespace)
    return namespace[name]


def test_a_main_function_survives_the_round_trip_by_value() -> None:
    made = in_main("FACTOR = 3.0\ndef times(x):\n    return FACTOR * x\n", "times")
    kept = pack_function(made, role="model")
    back = Kept.from_bytes(kept.to_bytes(), ref=kept.ref)
    function = back.function().function
    assert function is not made
    assert function(2.0) == 6.0
    assert back == kept


def test_a_function_records_its_name_module_source_and_hashes() -> None:
    kept = pack_function(scaled, role="model")
    assert (kept.name, kept.module) == ("scaled", __name__)
    assert kept.code == "def scaled(x: float) -> float:\n    return 3.0 * x\n"
    assert kept.sha256 == hashlib.sha256(f"scaled\n{kept.code}".encode()).hexdigest()
    assert kept.payload_sha256 == hashlib.sha256(kept.payload).hexdigest()
    assert kept.ref == f"study:model@{kept.sha256[:16]}"


def test_a_function_without_source_text_is_keyed_by_its_pickle() -> None:
    made = in_main("def made(x):\n    return x + 1\n", "made")  # inspect cannot read it
    kept = pack_function(made, role="model")
    assert kept.code is None
    assert kept.sha256 == kept.payload_sha256
    assert Kept.from_bytes(kept.to_bytes(), ref=kept.ref).function().function(1) == 2


def test_the_export_identity_holds_name_source_and_hash() -> None:
    kept = pack_function(scaled, role="model")
    identity = kept.function(scaled).identity()
    assert identity == {
        "ref": kept.ref,
        "source": "",
        "sha256": kept.sha256,
        "name": "scaled",
        "module": __name__,
        "code": kept.code,
    }


def test_arrays_round_trip_with_their_values_and_types() -> None:
    given = arrays()
    kept = pack_data(given, task="classification")
    loaded = Kept.from_bytes(kept.to_bytes(), ref=kept.ref).function().function()
    assert sorted(loaded) == ["x_train", "y_train"]
    np.testing.assert_array_equal(loaded["x_train"], given["x_train"])
    assert loaded["x_train"].dtype == np.float32
    assert loaded["y_train"].dtype == np.int64


def test_unlabelled_rows_given_as_data_travel_with_the_arrays() -> None:
    given = {**arrays(), "x_unlabeled": np.ones((7, arrays()["x_train"].shape[1]), np.float32)}
    kept = pack_data(given, task="classification")
    loaded = kept.function().function()
    np.testing.assert_array_equal(loaded["x_unlabeled"], given["x_unlabeled"])
    read = as_arrays(loaded, source="data=")
    assert read.x_unlabeled is not None and read.x_unlabeled.shape[0] == 7
    wrong = {**arrays(), "x_unlabeled": np.ones((7, 1), np.float32)}
    with pytest.raises(studies.StudyError, match="x_unlabeled"):
        pack_data(wrong, task="classification")


def test_an_x_y_tuple_is_the_training_arrays() -> None:
    given = arrays()
    as_tuple = pack_data((given["x_train"], given["y_train"]), task="classification")
    assert as_tuple.sha256 == pack_data(given, task="classification").sha256


def test_a_torch_dataset_is_read_once_into_arrays() -> None:
    given = arrays()
    dataset = torch.utils.data.TensorDataset(
        torch.from_numpy(given["x_train"]), torch.from_numpy(given["y_train"])
    )
    kept = pack_data(dataset, task="classification")
    assert kept.kind == "arrays"
    loaded = kept.function().function()
    np.testing.assert_array_equal(loaded["x_train"], given["x_train"])


def test_a_loader_function_is_kept_as_a_function() -> None:
    kept = pack_data(arrays, task="classification")
    assert (kept.role, kept.kind, kept.name) == ("data", "function", "arrays")
    assert kept.ref.startswith("study:data@")


def test_the_same_arrays_keep_the_same_key_and_others_another() -> None:
    one, two = arrays(), arrays()
    two["x_train"][0, 0] += 1.0
    first = pack_data(one, task="classification")
    assert pack_data(arrays(), task="classification").ref == first.ref
    assert pack_data(two, task="classification").ref != first.ref


def test_data_over_the_limit_says_to_write_a_file() -> None:
    with pytest.raises(studies.StudyError) as error:
        pack_data(arrays(), task="classification", limit_mb=0.0001)
    message = str(error.value)
    assert "over the 0.0001 MB a study carries" in message
    assert "numpy.savez('data.npz'" in message and "dataset = 'data.npz'" in message


def test_a_function_over_the_limit_is_refused() -> None:
    big = np.zeros(100_000)

    def heavy() -> float:
        return float(big.sum())

    with pytest.raises(studies.StudyError, match=r"pickles to .* over the 0.1 MB"):
        pack_function(heavy, role="model", limit_mb=0.1)


def test_arrays_with_nan_are_refused_as_data_files_are() -> None:
    given = arrays()
    given["x_train"][5, 2] = np.nan
    with pytest.raises(studies.StudyError, match=r"x_train holds 1 NaN values \(first at row 5\)"):
        pack_data(given, task="classification")


def test_labels_that_are_not_class_numbers_are_refused() -> None:
    given = arrays()
    given["y_train"] = given["y_train"] + 0.5
    with pytest.raises(studies.StudyError, match="y_train"):
        pack_data(given, task="classification")


def test_a_tuple_of_three_is_refused() -> None:
    given = arrays()
    with pytest.raises(studies.StudyError, match=r"\(x_train, y_train\), got 3 items"):
        pack_data((given["x_train"], given["y_train"], given["y_train"]), task="classification")


def test_something_that_cannot_be_pickled_is_refused_naming_it() -> None:
    import threading

    lock = threading.Lock()

    def locked() -> bool:
        return lock.locked()

    with pytest.raises(studies.StudyError, match=r"'.*locked' cannot be pickled"):
        pack_function(locked, role="model")


def test_a_damaged_artifact_is_refused() -> None:
    kept = pack_function(scaled, role="model")
    content = bytearray(kept.to_bytes())
    content[-1] ^= 0xFF
    with pytest.raises(studies.StudyError, match="damaged"):
        Kept.from_bytes(bytes(content), ref=kept.ref)


def test_a_pickle_naming_a_missing_module_says_which_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "elsewhere_models.py").write_text("def build(x):\n    return x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import elsewhere_models  # type: ignore[import-not-found]

    kept = pack_function(elsewhere_models.build, role="model")  # importable: by reference
    monkeypatch.delitem(sys.modules, "elsewhere_models")
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(tmp_path)])
    with pytest.raises(studies.StudyError) as error:
        Kept.from_bytes(kept.to_bytes(), ref=kept.ref).function()
    message = str(error.value)
    assert "model factory 'build' (module elsewhere_models)" in message
    assert "install module 'elsewhere_models' here" in message


def test_kept_code_and_data_are_stored_in_the_database_and_named_by_the_spec(
    tmp_path: Path,
) -> None:
    spec = keep_inline(spec_with(tmp_path), model=build, data=arrays())
    assert spec.train.model.startswith("study:model@")
    assert spec.train.dataset.startswith("study:data@")
    stored = read_kept(spec.storage, spec.train.model)
    assert stored is not None and stored.name == "build"
    assert load_factory(spec.train.model).function is build  # this process: the original
    loaded = read_arrays(spec.train.dataset)
    np.testing.assert_array_equal(loaded.x_train, arrays()["x_train"])


def test_a_spec_may_give_the_factory_its_model_args(tmp_path: Path) -> None:
    spec = keep_inline(spec_with(tmp_path, model_args={"hidden": 5}), model=build, data=arrays())
    assert spec.train.model_args == {"hidden": 5}


def test_a_worker_without_the_stored_function_says_to_run_the_study_again(
    tmp_path: Path,
) -> None:
    spec = spec_with(tmp_path)  # names kept references the database does not hold
    with pytest.raises(studies.StudyError, match=r"does not keep it; run the study again"):
        restore_kept(spec.storage, spec.train.replace(model="study:model@" + "1" * 16))


def test_a_kept_reference_not_loaded_here_says_how_to_give_it() -> None:
    with pytest.raises(UserCodeError, match=r"kept in a study and not loaded in this process"):
        load_loader("study:data@" + "2" * 16)


def test_retraining_with_another_function_than_the_exported_one_is_refused(
    tmp_path: Path,
) -> None:
    spec = keep_inline(spec_with(tmp_path), model=build, data=arrays())
    with pytest.raises(studies.StudyError, match=r"'other_build'.* is not the one"):
        restore_for_export(spec.train, Provenance(), model=other_build)


def test_giving_a_function_to_a_config_of_a_file_factory_is_refused() -> None:
    config = TrainConfig(model="models.py:build", dataset="digits")
    with pytest.raises(studies.StudyError, match="model= is for a config whose model is kept"):
        restore_for_export(config, Provenance(), model=build)


def test_retraining_a_function_found_nowhere_says_how_to_give_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = keep_inline(spec_with(tmp_path), model=build)
    monkeypatch.delenv("HPSTUDY_STORAGE", raising=False)
    missing = spec.train.replace(model="study:model@" + "3" * 16)  # never kept anywhere
    about = Provenance(storage=spec.storage, study="kept")
    with pytest.raises(studies.StudyError) as error:
        restore_for_export(missing, about, path="best.toml")
    message = str(error.value)
    assert f"looked in {spec.storage} (not there)" in message
    assert "studies.train(path, model=...)" in message and "set HPSTUDY_STORAGE" in message


def test_a_kept_loader_is_called_where_the_data_is_read(tmp_path: Path) -> None:
    spec = keep_inline(spec_with(tmp_path), data=arrays)
    stored = read_kept(spec.storage, spec.train.dataset)
    assert stored is not None and stored.kind == "function"
    loaded = read_arrays(spec.train.dataset)
    np.testing.assert_array_equal(loaded.x_train, arrays()["x_train"])
    assert loaded.provenance["loader_name"] == "arrays"
