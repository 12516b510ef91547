from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest
from torch import nn

from tests.trainer_tests.user_code import MODELS, write_package
from trainer import (
    ConfigError,
    TrainConfig,
    UserCodeError,
    UserFunction,
    is_kept_reference,
    keep_function,
    kept_reference,
    load_factory,
    load_loader,
    parse_reference,
)


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("models.py:build", ("models.py", "build")),
        ("path/to/models.py:Net.build", ("path/to/models.py", "Net.build")),
        ("package.module:build", ("package.module", "build")),
        ("mlp", None),
        ("data/train.npz", None),
        ("C:\\data\\x.npz", None),
        ("models.py:", None),
        ("models.py:9lives", None),
        ("my-module:build", None),
    ],
)
def test_parse_reference(text: str, parts: tuple[str, str] | None) -> None:
    parsed = parse_reference(text)
    assert (None if parsed is None else (parsed.target, parsed.name)) == parts


def test_factory_from_a_file_records_its_identity(models_py: Path) -> None:
    factory = load_factory(f"{models_py}:build")
    assert isinstance(factory.function((1, 4), 3), nn.Module)
    assert factory.source == str(models_py.resolve())
    assert factory.sha256 == hashlib.sha256(models_py.read_bytes()).hexdigest()
    assert factory.identity() == {
        "ref": f"{models_py}:build",
        "source": factory.source,
        "sha256": factory.sha256,
    }


def test_relative_file_is_found_in_the_search_path(models_py: Path, tmp_path: Path) -> None:
    factory = load_factory("models.py:build", search_path=[tmp_path])
    assert factory.source == str(models_py.resolve())


def test_relative_file_is_found_in_the_current_folder(
    models_py: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(models_py.parent)
    assert load_factory("models.py:build").source == str(models_py.resolve())


def test_factory_from_a_module_with_search_path(tmp_path: Path) -> None:
    module = write_package(tmp_path, MODELS)
    factory = load_factory(f"{module}:build", search_path=[tmp_path])
    nets = tmp_path / module.split(".")[0] / "nets.py"
    assert factory.source == str(nets.resolve())
    assert factory.sha256 == hashlib.sha256(nets.read_bytes()).hexdigest()
    assert isinstance(factory.function((4,), 2), nn.Sequential)


def test_loading_a_file_twice_runs_it_once(models_py: Path) -> None:
    first = load_factory(f"{models_py}:build")
    again = load_factory(f"{models_py}:build")
    assert again.function is first.function


def test_a_changed_file_is_run_again(models_py: Path) -> None:
    first = load_factory(f"{models_py}:build")
    models_py.write_text(MODELS + "\nEXTRA = 1\n")
    os.utime(models_py, ns=(1, 1))  # a different stamp, even on a coarse-grained clock
    again = load_factory(f"{models_py}:build")
    assert again.function is not first.function and again.sha256 != first.sha256


def test_a_file_may_import_its_neighbours(tmp_path: Path) -> None:
    (tmp_path / "blocks_for_test.py").write_text("WIDTH = 5\n")
    (tmp_path / "net.py").write_text(
        "from blocks_for_test import WIDTH\n"
        "from torch import nn\n"
        "def build(input_shape, num_classes):\n"
        "    return nn.Linear(WIDTH, num_classes)\n"
    )
    assert load_factory(f"{tmp_path / 'net.py'}:build").function((5,), 2).in_features == 5


def test_errors_are_config_errors() -> None:
    assert issubclass(UserCodeError, ConfigError)


def test_unknown_module_names_the_module_the_search_path_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(UserCodeError) as info:
        load_factory("no_such_models_here:build", search_path=[tmp_path])
    message = str(info.value)
    assert "cannot import module 'no_such_models_here'" in message
    assert str(tmp_path.resolve()) in message  # the search path used
    assert os.getcwd() in message
    assert "put no_such_models_here.py beside the spec or give its path" in message
    assert "site-packages" not in message  # installed packages are not the user's concern


def test_a_module_whose_import_fails_says_why(tmp_path: Path) -> None:
    module = write_package(tmp_path, "import not_installed_anywhere\n")
    with pytest.raises(UserCodeError, match="No module named 'not_installed_anywhere'"):
        load_factory(f"{module}:build", search_path=[tmp_path])


def test_missing_file_lists_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(UserCodeError) as info:
        load_factory("absent.py:build", search_path=[tmp_path])
    assert "file absent.py not found" in str(info.value)
    assert str(tmp_path.resolve()) in str(info.value)
    assert "put absent.py beside the spec or give its path" in str(info.value)


def test_missing_attribute_suggests_a_close_callable(models_py: Path) -> None:
    with pytest.raises(UserCodeError) as info:
        load_factory(f"{models_py}:buidl")
    message = str(info.value)
    assert "has no 'buidl' (did you mean 'build'?)" in message
    listed = re.search(r"its functions and classes: (.*)$", message)
    assert listed is not None and "build_strict" in listed.group(1)
    assert "nn" not in listed.group(1).split(", ")  # imported names are not the file's own


def test_a_name_that_is_not_callable(models_py: Path) -> None:
    with pytest.raises(
        UserCodeError, match="'WIDTH' is a value of type int, not a function or class"
    ):
        load_factory(f"{models_py}:WIDTH")


def test_a_file_that_fails_to_run(tmp_path: Path) -> None:
    path = tmp_path / "broken.py"
    path.write_text("def build(:\n")
    with pytest.raises(UserCodeError, match=r"running .*broken\.py failed: SyntaxError"):
        load_factory(f"{path}:build")


def test_a_malformed_reference() -> None:
    with pytest.raises(UserCodeError, match="is not a reference"):
        load_factory("models.py:")


def test_loader_errors_say_loader(tmp_path: Path) -> None:
    with pytest.raises(UserCodeError, match=r"data loader 'absent\.py:load'"):
        load_loader("absent.py:load", search_path=[tmp_path])


def test_a_kept_reference_parses_as_one_kept_in_a_study() -> None:
    parsed = parse_reference("study:model@0123456789abcdef")
    assert parsed is not None and parsed.kept and not parsed.is_file
    assert parse_reference("study:model@0123") is None  # a key has 16 hex digits
    assert not is_kept_reference("models.py:build")


def test_a_kept_function_is_found_by_its_reference_once_registered() -> None:
    def build(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        return nn.Linear(input_shape[0], num_classes)

    ref = kept_reference("model", "ab" * 32)
    assert ref == "study:model@" + "ab" * 8
    keep_function(UserFunction(ref=ref, function=build, source="", sha256="ab" * 32, name="build"))
    assert load_factory(ref).function is build
    assert TrainConfig(model=ref, dataset="digits").model == ref  # a valid config


def test_a_kept_reference_nobody_registered_says_how_to_give_it() -> None:
    with pytest.raises(UserCodeError, match=r"studies.train\(path, model=\.\.\.\)"):
        load_factory("study:model@" + "cd" * 8)
