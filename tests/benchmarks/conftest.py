"""The benchmarks quiet brewnet's log; put its level back after each test."""

import pytest

from brewnet.log import get_logger


@pytest.fixture(autouse=True)
def restore_log_level():
    level = get_logger().level
    yield
    get_logger().setLevel(level)
