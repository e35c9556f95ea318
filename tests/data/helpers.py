"""Tiny databases built by the tests themselves (no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from brewnet.data.datum import array_to_datum
from brewnet.data.lmdb_source import write_lmdb


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
