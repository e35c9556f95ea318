"""benchmarks.data at tiny sizes: the temporary LMDB is read and both rates are reported."""

import re

from benchmarks import data
from brewnet.data.lmdb_source import LMDBSource


def test_mnist_like_lmdb_has_the_records(tmp_path):
    """write_mnist_like_lmdb writes the asked number of records."""
    data.write_mnist_like_lmdb(tmp_path / "db", 70)
    source = LMDBSource(str(tmp_path / "db"))
    try:
        assert len(source) == 70
    finally:
        source.close()


def test_quick_run_reports_delivery_against_consumption(capsys):
    """Delivery and consumption rates in batches/s and their ratio against the 5x goal."""
    assert data.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"Data layer delivers +[0-9.]+ batches/s", out)
    assert re.search(r"training consumes +[0-9.]+ batches/s", out)
    assert re.search(r"delivery / consumption: [0-9.]+x \(goal >= 5x: (met|not met)\)", out)
