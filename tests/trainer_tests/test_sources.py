"""The user's data: CSV files, loader functions, checks before training, held-out test shares
and per-feature standardisation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.datasets import load_wine

from trainer import (
    BadDataError,
    DataUnavailableError,
    TrainConfig,
    UserCodeError,
    load_data,
    read_arrays,
)


def config(dataset: str | Path, **changes: Any) -> TrainConfig:
    return TrainConfig(dataset=str(dataset), device="cpu", **changes)


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    lines = [",".join(header)] + [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def wine_csv(path: Path) -> Path:
    wine = load_wine()
    rows = np.column_stack([wine.data, wine.target]).tolist()
    return write_csv(path, [*wine.feature_names, "cultivar"], rows)


def test_csv_classification_reads_features_and_labels(tmp_path: Path) -> None:
    path = wine_csv(tmp_path / "wine.csv")
    data = load_data(config(path, target="cultivar"), with_test=False)
    assert data.input_shape == (13,) and data.num_classes == 3
    assert data.y_train.dtype == torch.int64
    assert data.identity["target"] == ["cultivar"] and len(data.identity["features"]) == 13
    assert (data.identity["task"], data.identity["classes"], data.identity["outputs"]) == (
        "classification",
        3,
        3,
    )


def test_csv_with_two_target_columns(tmp_path: Path) -> None:
    from trainer import fit

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    rows = np.column_stack([x, x[:, 0] * 3, x[:, 1] - 1]).tolist()
    path = write_csv(tmp_path / "two.csv", ["a", "b", "c", "first", "second"], rows)
    run = config(path, target=["first", "second"], task="regression")
    data = load_data(run)
    assert data.input_shape == (3,) and data.outputs == 2
    assert data.y_train.shape == (180, 2) and data.y_train.dtype == torch.float32
    # Without standardize the targets keep their units, each paired with its row's features.
    stats = data.standardization
    assert stats is not None and stats["per_feature"] is False
    x_raw = data.x_train.double() * stats["x_std"] + stats["x_mean"]
    assert torch.allclose(data.y_train[:, 0].double(), 3 * x_raw[:, 0], atol=1e-4)
    assert torch.allclose(data.y_train[:, 1].double(), x_raw[:, 1] - 1, atol=1e-4)
    assert data.identity["target_variance"] == pytest.approx(
        float(np.mean(np.var(data.y_train.double().numpy(), axis=0)))
    )
    result = fit(
        run.replace(hidden=[16], optimizer="adam", lr=0.02, epochs=15, batch_size=16), data
    )
    assert result.best is not None and result.best.dev_r2 > 0.9


def test_semicolon_csv(tmp_path: Path) -> None:
    path = tmp_path / "semi.csv"
    path.write_text("a;b;y\n" + "".join(f"{i};{2 * i};{i % 2}\n" for i in range(20)))
    assert read_arrays(str(path), target=["y"]).x_train.shape == (20, 2)


@pytest.mark.parametrize(
    ("text", "target", "message"),
    [
        ("", ["y"], "is empty; a CSV data set needs a header row"),
        ("a,y\n", ["y"], "has a header but no data rows"),
        ("a,y\n1,0\n2\n", ["y"], "line 3 has 1 fields, the header has 2"),
        (
            "a,price\n1,0\n",
            ["prise"],
            "has no column 'prise' (did you mean 'price'?); its columns: a, price",
        ),
        (
            "a,city,y\n1,Paris,0\n2,3,1\n3,Rome,0\n",
            ["y"],
            "column 'city' holds 2 non-numeric values (first at line 2: 'Paris')",
        ),
        ("a,y\n1,0\n,1\n3,0\n", ["y"], "column 'a' holds 1 empty cells (first at line 3)"),
        (
            "a,y\n1,0\nnan,1\nNaN,0\n",
            ["y"],
            "column 'a' holds 2 NaN values (first at line 3); clean",
        ),
        ("a,y\n1,0\ninf,1\n", ["y"], "column 'a' holds 1 infinite values (first at line 3)"),
        ("a,y\n1,0\n2,1.5\n3,-1\n", ["y"], "column 'y' holds 2 values that are not class numbers"),
        ("y\n1\n2\n", ["y"], "has no feature columns besides the target"),
    ],
    ids=[
        "empty",
        "header-only",
        "ragged",
        "unknown-target",
        "non-numeric",
        "empty-cell",
        "nan",
        "inf",
        "fractional-labels",
        "no-features",
    ],
)
def test_bad_csv_is_one_clear_error(
    tmp_path: Path, text: str, target: list[str], message: str
) -> None:
    path = tmp_path / "data.csv"
    path.write_text(text)
    with pytest.raises(BadDataError) as info:
        load_data(config(path, target=target))
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_fractional_labels_are_fine_for_regression(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "r.csv", ["a", "y"], [[i, i / 3] for i in range(20)])
    data = load_data(config(path, target="y", task="regression"))
    assert data.y_train.shape == (18, 1)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x_train": np.full((30, 4), np.nan)}, "x_train holds 120 NaN values (first at row 0)"),
        (
            {"x_train": np.where(np.eye(30, 4) > 0, np.inf, 0.0)},
            "x_train holds 4 infinite values (first at row 0)",
        ),
        ({"x_test": np.array([[0.0, np.nan]] * 3)}, "x_test holds 3 NaN values"),
        ({"x_train": np.array([["a", "b"]] * 30)}, "x_train holds <U1 values, not numbers"),
    ],
    ids=["nan", "inf", "test-nan", "strings"],
)
def test_bad_npz_is_one_clear_error(
    tmp_path: Path, arrays: dict[str, np.ndarray], message: str
) -> None:
    values = {"x_train": np.zeros((30, 2)), "y_train": np.arange(30) % 2, **arrays}
    if "x_test" in arrays:
        values["y_test"] = np.zeros(3)
    path = tmp_path / "data.npz"
    np.savez(path, **values)  # type: ignore[arg-type]
    with pytest.raises(BadDataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_data(config(path))


def test_an_npz_full_of_nan_no_longer_trains(tmp_path: Path) -> None:
    from trainer import fit

    np.savez(tmp_path / "nan.npz", x_train=np.full((40, 3), np.nan), y_train=np.arange(40) % 2)
    with pytest.raises(DataUnavailableError, match="NaN"):
        fit(config(tmp_path / "nan.npz", hidden=(4,), epochs=1))


def test_npz_regression_targets(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "r.npz", x_train=rng.normal(size=(30, 2)), y_train=rng.normal(size=30))
    data = load_data(config(tmp_path / "r.npz", task="regression"))
    assert data.y_train.shape == (27, 1) and data.num_classes == 1


def test_loader_returning_arrays_and_tensors(loaders_py: Path) -> None:
    data = load_data(config(f"{loaders_py}:arrays"), with_test=True)
    assert data.input_shape == (3,) and data.num_classes == 2
    assert data.y_test is not None and data.y_test.tolist() == [1] * 5
    assert data.identity["loader_ref"] == f"{loaders_py}:arrays"
    assert data.identity["loader_source"] == str(loaders_py.resolve())
    assert len(data.identity["loader_sha256"]) == 64


def test_loader_returning_a_dataset(loaders_py: Path) -> None:
    data = load_data(config(f"{loaders_py}:dataset", task="regression", dev_fraction=0.2))
    assert data.input_shape == (2,) and data.outputs == 2
    assert len(data.y_train) + len(data.y_dev) == 50
    # Items are (x, y) with x = (i, i) and y = (2i, -i): they stay paired through the split.
    x_raw = data.x_train * data.standardization["x_std"] + data.standardization["x_mean"]  # type: ignore[index]
    assert torch.allclose(data.y_train[:, 0], 2 * x_raw[:, 0], atol=1e-4)


def test_loader_in_the_search_path_gets_data_dir(loaders_py: Path) -> None:
    data = load_data(
        config("loaders.py:with_dir", data_dir="abcd"), search_path=[loaders_py.parent]
    )
    assert len(data.y_train) == 18


def test_loader_data_is_checked(loaders_py: Path) -> None:
    with pytest.raises(
        BadDataError, match=r"data loader .*: x_train holds 1 NaN values \(first at row 4\)"
    ):
        load_data(config(f"{loaders_py}:nan_inputs"))


def test_loader_returning_something_else(loaders_py: Path) -> None:
    with pytest.raises(
        UserCodeError, match=r"item 0 of its dataset is of type int, not an \(x, y\) pair"
    ):
        load_data(config(f"{loaders_py}:a_list"))


def original_rows(data_x: torch.Tensor, stats: dict[str, Any] | None) -> set[int]:
    """The ids in column 0 of inputs standardised with global `stats`."""
    assert stats is not None
    return {round(v) for v in (data_x[:, 0].double() * stats["x_std"] + stats["x_mean"]).tolist()}


def test_test_fraction_never_overlaps_train_or_dev(tmp_path: Path) -> None:
    ids = np.arange(200, dtype=np.float64)
    np.savez(tmp_path / "ids.npz", x_train=ids[:, None], y_train=np.arange(200) % 2)
    tests = []
    for split_seed in (0, 1, 2):
        run = config(tmp_path / "ids.npz", test_fraction=0.25, split_seed=split_seed)
        data = load_data(run, with_test=True)
        assert data.x_test is not None
        train, dev, test = (
            original_rows(x, data.standardization) for x in (data.x_train, data.x_dev, data.x_test)
        )
        assert len(test) == data.identity["test"] == 50
        assert not test & train and not test & dev and not train & dev
        assert len(train | dev | test) == 200
        tests.append(test)
    assert tests[0] == tests[1] == tests[2]  # the same examples, whatever split_seed


def test_test_fraction_with_a_test_split_is_refused() -> None:
    with pytest.raises(DataUnavailableError, match="has its own test split"):
        load_data(config("digits", test_fraction=0.1))


def test_standardisation_uses_the_training_split_only(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(loc=[5.0, -3.0, 0.0], scale=[2.0, 0.5, 1.0], size=(300, 3))
    x[:, 2] = 7.0  # a constant column
    y = x[:, :2] @ np.array([1.0, 4.0]) + 10.0
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y)
    data = load_data(
        config(tmp_path / "d.npz", task="regression", standardize=True), with_test=False
    )
    stats = data.standardization
    assert stats is not None and stats["per_feature"] is True
    x_train = data.x_train.double()
    assert torch.allclose(x_train[:, :2].mean(0), torch.zeros(2, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(
        x_train[:, :2].std(0, unbiased=False), torch.ones(2, dtype=torch.float64), atol=1e-5
    )
    assert stats["x_std"][2] == 1.0 and torch.all(data.x_train[:, 2] == 0)
    assert data.y_train.mean().item() == pytest.approx(0.0, abs=1e-5)
    # The statistics are those of the training rows, not of all of them.
    train_rows = (x_train * torch.tensor(stats["x_std"]) + torch.tensor(stats["x_mean"])).numpy()
    assert np.allclose(stats["x_mean"], train_rows.mean(axis=0))
    assert not np.allclose(stats["x_mean"][:2], x[:, :2].mean(axis=0), rtol=0, atol=1e-6)
    assert data.target_std == stats["y_std"] and data.identity["target_variance"] == pytest.approx(
        1.0
    )


@pytest.mark.parametrize("standardize", [False, True])
def test_stored_statistics_reproduce_the_same_tensors(tmp_path: Path, standardize: bool) -> None:
    path = wine_csv(tmp_path / "wine.csv")
    first = load_data(
        config(path, target="cultivar", standardize=standardize, test_fraction=0.2), with_test=True
    )
    stored = json.loads(json.dumps(first.standardization))  # through a file, as an export does
    again = load_data(
        config(path, target="cultivar", standardize=standardize, test_fraction=0.2, train_size=40),
        with_test=True,
        standardization=stored,
    )
    # A smaller training set would give other statistics; the stored ones are applied instead.
    assert torch.equal(again.x_dev, first.x_dev)
    assert again.x_test is not None and first.x_test is not None
    assert torch.equal(again.x_test, first.x_test)
    assert torch.equal(again.x_train, first.x_train[:40])
    fresh = load_data(
        config(path, target="cultivar", standardize=standardize, test_fraction=0.2, train_size=40)
    )
    assert not torch.equal(fresh.x_dev, first.x_dev)


def test_stored_statistics_of_another_kind_are_refused(tmp_path: Path) -> None:
    path = wine_csv(tmp_path / "wine.csv")
    stats = load_data(config(path, target="cultivar")).standardization
    with pytest.raises(DataUnavailableError, match="global, but the config has standardize = true"):
        load_data(config(path, target="cultivar", standardize=True), standardization=stats)


def test_stored_statistics_of_another_shape_are_refused(tmp_path: Path) -> None:
    path = wine_csv(tmp_path / "wine.csv")
    stats = load_data(config(path, target="cultivar", standardize=True)).standardization
    assert stats is not None
    stats = {**stats, "x_mean": stats["x_mean"][:5], "x_std": stats["x_std"][:5]}
    with pytest.raises(
        DataUnavailableError,
        match=r"for inputs of shape \(5,\), but these inputs have shape \(13,\)",
    ):
        load_data(config(path, target="cultivar", standardize=True), standardization=stats)
