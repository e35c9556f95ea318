"""A folder of images and a list file turned into a database of Datums: Caffe's
``convert_imageset``, run over all cores.

The list holds ``relative/path label`` lines (split at the last space, as Caffe does); each
path is appended to the root folder as plain text, so ``ROOT/`` needs its trailing slash as in
Caffe. Record ``i`` of the (possibly shuffled) list gets key ``%08d_<path>``; images that
cannot be read are logged and skipped, and their numbers stay unused, as Caffe leaves them.
Worker threads decode in any order (Pillow's decoders and NumPy's array operations let go of
the GIL, and threads hand pixels over without copying them between processes), but records
are written in list order, so the database is the same for any number of workers. It is built
beside its final name and renamed in when done.
"""

from __future__ import annotations

import io
import os
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import numpy as np

from ..errors import DataError
from ..log import log
from ..proto import caffe_pb2
from .datum import array_to_datum
from .image import decode_image, import_pillow
from .resize import resize_linear

_FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG"}  # --encode_type → Pillow's writer
_JPEG_QUALITY = 95  # OpenCV's imencode default, which Caffe uses
_AHEAD = 16  # images in flight per worker thread
_COMMIT = 1000  # Caffe logs "Processed N files." at each commit of this many records


def read_image_list(path: str) -> list[tuple[str, int, int]]:
    """The ``(relative path, label, line number)`` entries of a list file, in file order.

    Caffe splits each line at its last space; a line without a space or with a label that is
    not an integer is an error naming the line (Caffe silently made it label 0). Blank lines
    are skipped.
    """
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise DataError(f"list file '{path}' cannot be read ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise DataError(f"list file '{path}' is not UTF-8 text; it should hold lines "
                        "'relative/path label'") from None
    entries = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        name, space, label = line.rpartition(" ")
        if not space or not name:
            raise DataError(f"{path}:{number}: '{line}' is not 'relative/path label'; put one "
                            "space and an integer label after the path")
        try:
            entries.append((name, int(label), number))
        except ValueError:
            raise DataError(f"{path}:{number}: label '{label}' is not an integer; each line "
                            "is 'relative/path label'") from None
    return entries


@dataclass(frozen=True)
class ImageOptions:
    """How each image becomes a Datum (Caffe's ReadImageToDatum arguments)."""

    root: str
    is_color: bool = True
    resize_height: int = 0
    resize_width: int = 0
    encoded: bool = False
    encode_type: str = ""

    @property
    def resizing(self) -> bool:
        return self.resize_height > 0 and self.resize_width > 0


def _extension(name: str) -> str:
    """The lower-case text after the last dot (the whole name when there is none, as Caffe)."""
    return name.rpartition(".")[2].lower()


def _encoding_matches(name: str, encoding: str) -> bool:
    """Caffe's matchExt: the file's extension names the encoding (``jpeg`` counts as ``jpg``)."""
    ext = _extension(name)
    return ext == encoding or (encoding == "jpg" and ext == "jpeg")


def encode_pixels(pixels: np.ndarray, encoding: str) -> bytes:
    """``(C, H, W)`` BGR (or gray) uint8 pixels as a PNG or JPEG file's bytes."""
    image_mod = import_pillow("encoding images")
    planes = pixels[0] if pixels.shape[0] == 1 else pixels[::-1].transpose(1, 2, 0)
    out = io.BytesIO()
    options = {"quality": _JPEG_QUALITY} if _FORMATS[encoding] == "JPEG" else {}
    image_mod.fromarray(np.ascontiguousarray(planes)).save(out, _FORMATS[encoding], **options)
    return out.getvalue()


def image_to_datum(options: ImageOptions, name: str, label: int
                   ) -> tuple[caffe_pb2.Datum, tuple[int, int, int]]:
    """The Datum Caffe's ReadImageToDatum makes of image ``name`` (under ``options.root``)
    and the decoded ``(C, H, W)`` shape; DataError if the file is missing or not an image.

    Raw Datums hold BGR planes; encoded ones the file's own bytes, unless resizing or the
    requested encoding differs from the file's, when the decoded pixels are re-encoded.
    """
    path = options.root + name
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise DataError(f"could not open or find file {path} ({e.strerror or e})") from None
    pixels = decode_image(data, options.is_color, what=f"image file {path}")
    if options.resizing:
        pixels = resize_linear(pixels, options.resize_height, options.resize_width)
    shape = pixels.shape
    if not options.encoded:
        datum = array_to_datum(pixels, label)
        datum.encoded = False
        return datum, shape
    encoding = options.encode_type or _extension(name)
    if not options.resizing and _encoding_matches(name, encoding):
        return caffe_pb2.Datum(data=data, label=label, encoded=True), shape
    if encoding not in _FORMATS:
        raise DataError(f"cannot encode {path} as '{encoding}'; use --encode_type png or jpg")
    return caffe_pb2.Datum(data=encode_pixels(pixels, encoding), label=label,
                           encoded=True), shape


def _convert_one(options: ImageOptions, item: tuple[int, tuple[str, int, int]]
                 ) -> tuple[int, bytes | None, tuple[int, int, int] | None, str]:
    """A worker's task: (line id, serialized Datum or None, shape, the failure if any)."""
    line_id, (name, label, _) = item
    try:
        datum, shape = image_to_datum(options, name, label)
    except DataError as e:
        return line_id, None, None, e.message
    return line_id, datum.SerializeToString(), shape, ""


@dataclass
class ConversionReport:
    """What a conversion did: records written, and the entries skipped with the reason."""

    written: int = 0
    skipped: list[str] = field(default_factory=list)  # 'LIST:LINE: why' for each


def _converted(entries: list[tuple[str, int, int]], options: ImageOptions, jobs: int
               ) -> Iterator[tuple[int, bytes | None, tuple[int, int, int] | None, str]]:
    """Each entry converted, in list order, by ``jobs`` worker threads (or this one). At most
    ``_AHEAD`` images per worker are in flight, so memory stays bounded whatever the list's
    length and however slow the database is to write."""
    tasks = enumerate(entries)
    work = partial(_convert_one, options)
    if jobs <= 1:
        yield from map(work, tasks)
        return
    with ThreadPoolExecutor(jobs) as pool:
        pending: deque[Future] = deque()
        for task in tasks:
            pending.append(pool.submit(work, task))
            if len(pending) >= jobs * _AHEAD:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _records(entries: list[tuple[str, int, int]], list_file: str, options: ImageOptions,
             jobs: int, check_size: bool, strict: bool, report: ConversionReport, bar: Any
             ) -> Iterable[tuple[str, bytes]]:
    """The database records, keyed ``%08d_<path>``; logs, counts and skips as Caffe."""
    first_shape = None
    for line_id, value, shape, why in _converted(entries, options, jobs):
        name, _, number = entries[line_id]
        if value is None:
            why = f"{list_file}:{number}: {why}"
            if strict:
                raise DataError(f"{why}; fix or remove the line, or drop --strict to skip "
                                "unreadable images")
            log.error(why)
            report.skipped.append(why)
        else:
            if check_size:
                first_shape = first_shape or shape
                if shape != first_shape:
                    raise DataError(f"--check_size: {options.root + name} is {_hw(shape)} but "
                                    f"the first image is {_hw(first_shape)}; give "
                                    "--resize_height and --resize_width, or drop --check_size")
            report.written += 1
            yield f"{line_id:08d}_{name}", value
            if bar is None and report.written % _COMMIT == 0:
                log.info(f"Processed {report.written} files.")
        if bar is not None:
            bar.update(1)
    if not report.written:
        hint = ("; ROOTFOLDER is joined to each path as written, so it needs its trailing "
                f"'/': {options.root}/" if not options.root.endswith(("/", os.sep)) else "")
        raise DataError(f"none of the {len(entries)} images of {list_file} could be read, so "
                        f"no database was written{hint}")


def _hw(shape: tuple[int, int, int]) -> str:
    c, h, w = shape
    return f"{c}×{h}×{w}"


def convert_imageset(list_file: str, db_name: str, *, options: ImageOptions,
                     shuffle: bool = False, seed: int | None = None, backend: str = "lmdb",
                     check_size: bool = False, jobs: int = 0, strict: bool = False
                     ) -> ConversionReport:
    """Build the database ``db_name`` from the images ``list_file`` names under
    ``options.root``.

    ``jobs`` worker threads decode (0: one per core); ``seed`` makes ``shuffle``
    reproducible (a random one is drawn and logged otherwise). Returns what was written and
    skipped; with ``strict`` an unreadable image is an error and nothing is written.
    """
    from ..tools.progress import counting_bar  # cli-facing extra

    if backend not in ("lmdb", "leveldb"):
        raise DataError(f"unknown --backend '{backend}'; use lmdb or leveldb")
    entries = read_image_list(list_file)
    if not entries:
        raise DataError(f"list file '{list_file}' names no images; each line is "
                        "'relative/path label'")
    if shuffle:
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % (1 << 31))
        log.info(f"Shuffling data (--seed {seed})")
        order = np.random.default_rng(seed).permutation(len(entries))
        entries = [entries[i] for i in order]
    log.info(f"A total of {len(entries)} images.")
    if options.encode_type and not options.encoded:
        log.info("encode_type specified, assuming encoded=true.")
        options = replace(options, encoded=True)
    jobs = jobs or os.cpu_count() or 1
    report = ConversionReport()
    if backend == "lmdb":
        from .lmdb_source import write_lmdb as write
    else:
        from .leveldb_source import write_leveldb as write
    with counting_bar(len(entries), sys.stderr, "images") as bar:
        write(db_name, _records(entries, list_file, options, jobs, check_size, strict, report, bar))
    if bar is not None or report.written % _COMMIT:
        log.info(f"Processed {report.written} files.")
    return report
