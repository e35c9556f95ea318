"""Fixtures for the solver tests: brewnet's log captured as glog-formatted text."""

from __future__ import annotations

import io
import logging

import pytest

from brewnet.log import GlogFormatter, get_logger


@pytest.fixture
def glog():
    """A StringIO receiving brewnet's log lines in glog format, as Caffe's log files hold."""
    stream = io.StringIO()
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
