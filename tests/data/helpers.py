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


def image_folder(root: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """A folder of test images and its Caffe list file ``list.txt`` (``path label`` lines):
    PNG and JPEG, colour and gray, two sizes, one corrupt file and one missing one.

    Returns the list's path and, for each PNG, its pixels in Caffe's layout (BGR, C×H×W).
    """
    from PIL import Image  # the image tests skip without Pillow

    rng = np.random.default_rng(5)
    (root / "pics").mkdir(parents=True)
    exact = {}
    lines = []
    specs = [("pics/a.png", (16, 20), 3), ("pics/b gray.png", (16, 20), 1),
             ("pics/c.jpg", (16, 20), 3), ("pics/d.jpeg", (16, 20), 1),
             ("pics/e.png", (23, 9), 3), ("pics/f.JPG", (30, 26), 3)]
    for i, (name, (h, w), channels) in enumerate(specs):
        hwc = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
        Image.fromarray(hwc[:, :, 0] if channels == 1 else hwc).save(
            root / name, format="PNG" if name.endswith(".png") else "JPEG")
        if name.endswith(".png"):
            exact[name] = hwc.transpose(2, 0, 1)[::-1].copy()
        lines.append(f"{name} {i % 3}")
    (root / "pics/broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    lines.insert(2, "pics/broken.png 1")
    lines.insert(5, "pics/missing.jpg 2")
    (root / "list.txt").write_text("\n".join(lines) + "\n")
    return root / "list.txt", exact


def jpeg_files(count: int, size: int = 32, seed: int = 0) -> list[bytes]:
    """``count`` distinct colour JPEG files of ``size``×``size`` (Pillow needed)."""
    from PIL import Image  # optional dependency, only these tests need it

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
