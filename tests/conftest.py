"""Fixtures for every test: brewnet's log captured as glog-formatted text; the LeNet tutorial
example loaded as a module; Pillow made unimportable; OpenBLAS on two threads."""

from __future__ import annotations

import builtins
import importlib.util
import io
import logging
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from brewnet import cores
from brewnet.log import GlogFormatter, get_logger


class GlogCapture(io.StringIO):
    """Brewnet's log lines in glog format, as Caffe's log files hold them."""

    def messages(self) -> list[str]:
        """The lines without their glog prefix, for tests that check what was said."""
        return [line.split("] ", 1)[-1] for line in self.getvalue().splitlines()]


@pytest.fixture
def glog() -> Iterator[GlogCapture]:
    """Capture brewnet's log at INFO while the test runs; the logger's level is restored."""
    stream = GlogCapture()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(GlogFormatter())
    logger = get_logger()
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture(scope="session")
def tutorial() -> ModuleType:
    """examples/mnist/tutorial.py as a module, so tests build the example's own LeNet instead
    of a copy of it."""
    path = Path(__file__).resolve().parents[1] / "examples" / "mnist" / "tutorial.py"
    spec = importlib.util.spec_from_file_location("lenet_tutorial", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def no_pillow(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``import PIL`` (and its submodules) fail while the test runs, as on a machine
    without Pillow, to check the install hint each image reader gives."""
    real_import = builtins.__import__

    def no_pil(name, *args, **kwargs):
        if name == "PIL" or name.startswith("PIL."):
            raise ImportError("no PIL")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pil)


@pytest.fixture
def two_blas_threads() -> Iterator[None]:
    """OpenBLAS on two threads while the test runs, whatever this machine's default, so that
    a net's pass splits over two (``brewnet.cores``); skips where NumPy's BLAS is not an
    identified OpenBLAS."""
    before = cores.blas_threads()
    if before is None:
        pytest.skip("NumPy's BLAS is not an identified OpenBLAS")
    cores.set_blas_threads(2)
    yield
    cores.set_blas_threads(before)
