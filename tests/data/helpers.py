"""Tiny databases built by the tests themselves (no downloads)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from brewnet.data.datum import array_to_datum
from brewnet.data.lmdb_source import write_lmdb
from brewnet.proto import caffe_pb2


def image_stack(count: int, shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """``count`` distinct uint8 images of ``shape`` (C, H, W)."""
    return np.random.default_rng(seed).integers(0, 256, size=(count, *shape), dtype=np.uint8)


def make_lmdb(path: Path, images: np.ndarray, labels: np.ndarray | None = None) -> Path:
    """An LMDB with keys ``%08d`` holding ``images`` (N, C, H, W) as Datum records."""
    if labels is None:
        labels = np.arange(len(images)) % 10
    write_lmdb(path, ((b"%08d" % i, array_to_datum(img, int(lbl)))
                      for i, (img, lbl) in enumerate(zip(images, labels, strict=True))))
    return path


def jpeg_files(count: int, size: int = 32, seed: int = 0) -> list[bytes]:
    """``count`` distinct colour JPEG files of ``size``×``size`` (Pillow needed)."""
    from PIL import Image  # noqa: PLC0415 - optional dependency, only these tests need it

    rng = np.random.default_rng(seed)
    files = []
    for _ in range(count):
        buf = io.BytesIO()
        pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(buf, "JPEG", quality=90)
        files.append(buf.getvalue())
    return files


def make_jpeg_lmdb(path: Path, files: list[bytes]) -> Path:
    """An LMDB of encoded Datums holding ``files``, labels 0, 1, ..., as
    ``convert_imageset -encoded`` writes them (channels/height/width left 0)."""
    write_lmdb(path, ((b"%08d" % i, caffe_pb2.Datum(encoded=True, data=data, label=i))
                      for i, data in enumerate(files)))
    return path
