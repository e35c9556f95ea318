"""CIFAR-10 as Caffe's ``convert_cifar_data`` and ``compute_image_mean`` lay it out.

``cifar10_train_lmdb`` (the five training batches in order, 50000 records) and
``cifar10_test_lmdb`` (10000); keys ``%05d`` numbered across the batches (for the official
10000-image batches this is Caffe's ``fileid * 10000 + itemid``); Datum channels=3, height=32,
width=32, the raw channel-major uint8 pixels and the label. ``mean.binaryproto`` is the
per-pixel mean of the training images as a (1, 3, 32, 32) BlobProto in the legacy
num/channels/height/width fields. The source is the python-pickle release
(``cifar-10-python.tar.gz``, or its extracted ``cifar-10-batches-py`` folder); the pickles are
read by an unpickler that can build numpy arrays and nothing else.
"""

from __future__ import annotations

import codecs
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..log import log
from ..proto import caffe_pb2
from ..proto.binaryio import write_binary
from .lmdb_source import lmdb_is_complete, write_lmdb
from .mnist import NumpyOnlyUnpickler, unpickle_arrays

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)
LMDB_NAMES = {"train": "cifar10_train_lmdb", "test": "cifar10_test_lmdb"}
MEAN_NAME = "mean.binaryproto"
CHANNELS, HEIGHT, WIDTH = 3, 32, 32
DOWNLOAD_HINT = ("download cifar-10-python.tar.gz (the python version) from "
                 "https://www.cs.toronto.edu/~kriz/cifar.html and pass it, or its extracted "
                 "cifar-10-batches-py folder, with --from")

Split = tuple[np.ndarray, np.ndarray]  # images (n, 3, 32, 32) uint8, labels (n,) int64


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """Python 3 protocol-2 pickles spell bytes as ``_codecs.encode(text, 'latin1')``; only
    that text-to-bytes form is admitted, no other codec."""
    if not isinstance(text, str) or codecs.lookup(encoding).name != "iso8859-1":
        raise DataError(f"pickle asks for _codecs.encode with encoding '{encoding}'; only "
                        "latin-1 byte strings are accepted")
    return text.encode("latin-1")


class CifarUnpickler(NumpyOnlyUnpickler):
    """numpy arrays, lists, dicts and byte strings; any other global is refused."""

    ALLOWED = {**NumpyOnlyUnpickler.ALLOWED, ("_codecs", "encode"): _latin1_encode}


def _batch(data: bytes, where: str) -> Split:
    """One pickled batch as (images (n, 3, 32, 32) uint8, labels (n,)), checked."""
    raw = unpickle_arrays(data, where, CifarUnpickler)
    if not isinstance(raw, dict):
        raise DataError(f"{where} holds a {type(raw).__name__}, not a CIFAR batch dictionary")
    entries = {(k.decode("latin-1") if isinstance(k, bytes) else k): v for k, v in raw.items()}
    if "data" not in entries or "labels" not in entries:
        raise DataError(f"{where} lacks the 'data' and 'labels' entries of a CIFAR-10 batch "
                        f"(it has {sorted(map(str, entries))})")
    images, labels = entries["data"], entries["labels"]
    if (not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 2
            or images.shape[1] != CHANNELS * HEIGHT * WIDTH):
        shape = getattr(images, "shape", type(images).__name__)
        raise DataError(f"{where}: 'data' is {getattr(images, 'dtype', '')} {shape}; expected "
                        f"uint8 (n, {CHANNELS * HEIGHT * WIDTH})")
    try:
        labels = np.asarray(labels)
    except Exception:
        labels = np.asarray([], dtype=object)
    if labels.ndim != 1 or len(labels) != len(images) or labels.dtype.kind not in "iu":
        raise DataError(f"{where}: 'labels' are {labels.dtype} {labels.shape}; expected "
                        f"{len(images)} integers")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{where}: labels fall outside 0..9")
    return (images.reshape(-1, CHANNELS, HEIGHT, WIDTH),
            labels.astype(np.int64))


def _read_batches(source: Path, names: tuple[str, ...]) -> list[tuple[str, bytes]]:
    """The raw bytes of each named batch, from a folder or a (gzipped) tar archive."""
    if source.is_dir():
        found = []
        for name in names:
            path = source / name
            if not path.is_file() and (source / "cifar-10-batches-py" / name).is_file():
                path = source / "cifar-10-batches-py" / name
            if not path.is_file():
                raise DataError(f"CIFAR-10 batch '{source / name}' not found; {DOWNLOAD_HINT}")
            found.append((f"'{path}'", path.read_bytes()))
        return found
    if not source.is_file():
        raise DataError(f"CIFAR-10 source '{source}' does not exist; {DOWNLOAD_HINT}")
    try:
        with tarfile.open(source, "r:*") as tar:
            members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            found = []
            for name in names:
                member = members.get(name)
                if member is None:
                    raise DataError(f"archive '{source}' has no member named {name}; "
                                    f"{DOWNLOAD_HINT}")
                handle = tar.extractfile(member)
                found.append((f"'{source}' member {member.name}", handle.read()))
            return found
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"'{source}' is neither a folder nor a readable tar.gz archive "
                        f"({e}); {DOWNLOAD_HINT}") from None


def load_cifar10_split(source: str | os.PathLike, split: str) -> Split:
    """All images and labels of ``split`` ("train" or "test"), batches concatenated in order."""
    names = TRAIN_BATCHES if split == "train" else TEST_BATCHES
    parts = [_batch(data, where) for where, data in _read_batches(Path(source), names)]
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))


def cifar10_records(images: np.ndarray, labels: np.ndarray) -> Iterator[tuple[bytes, bytes]]:
    """``(key, serialized Datum)`` pairs exactly as convert_cifar_data writes them."""
    datum = caffe_pb2.Datum(channels=CHANNELS, height=HEIGHT, width=WIDTH)
    for i in range(len(images)):
        datum.data = images[i].tobytes()
        datum.label = int(labels[i])
        yield b"%05d" % i, datum.SerializeToString()


def mean_blob(images: np.ndarray) -> caffe_pb2.BlobProto:
    """compute_image_mean's result: the per-pixel float mean as a (1, C, H, W) BlobProto."""
    n, c, h, w = images.shape
    # Caffe sums in float32; integer sums below 2**24 are exact there, so an int64 sum agrees.
    total = images.sum(axis=0, dtype=np.int64).astype(np.float32)
    mean = total / np.float32(n)
    blob = caffe_pb2.BlobProto(num=1, channels=c, height=h, width=w)
    blob.data.extend(mean.ravel().tolist())
    return blob


def convert_cifar10(out_dir: str | os.PathLike,
                    source_dir: str | os.PathLike) -> tuple[Path, Path, Path]:
    """Write the two CIFAR-10 LMDBs and ``mean.binaryproto`` into ``out_dir``; return the paths.

    ``source_dir`` is the ``cifar-10-batches-py`` folder (or its parent) or the
    ``cifar-10-python.tar.gz`` archive. Each LMDB is built in a temporary folder beside the
    target and renamed into place; complete existing LMDBs are kept, and the mean is
    rewritten whenever the training LMDB is (or when it is missing).
    """
    if source_dir is None:
        raise DataError(f"CIFAR-10 cannot be downloaded by brewnet; {DOWNLOAD_HINT}")
    out = Path(out_dir)
    targets = {split: out / LMDB_NAMES[split] for split in LMDB_NAMES}
    mean_path = out / MEAN_NAME
    splits = {split: load_cifar10_split(source_dir, split) for split in LMDB_NAMES}
    todo = [split for split in LMDB_NAMES
            if not lmdb_is_complete(targets[split], len(splits[split][0]), "CIFAR-10")]
    out.mkdir(parents=True, exist_ok=True)
    if todo:
        for split in todo:  # each LMDB appears under its name only once complete
            log.info(f"Writing {len(splits[split][0])} CIFAR-10 {split} records to "
                     f"{targets[split]}")
            write_lmdb(targets[split], cifar10_records(*splits[split]))
    else:
        log.info(f"CIFAR-10 LMDBs already present in {out}")
    if "train" in todo or not mean_path.exists():
        log.info(f"Writing the training-set mean to {mean_path}")
        write_binary(mean_path, mean_blob(splits["train"][0]))
    return targets["train"], targets["test"], mean_path
