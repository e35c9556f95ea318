"""benchmarks.data at tiny sizes: the temporary LMDBs are read and the rates are reported."""

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


def test_quick_run_reports_jpeg_delivery_against_the_decoder(capsys):
    """The JPEG section: the decoder's limit, the Data layer with 1 and all workers, and
    the ratio to the limit against the 0.8 goal."""
    assert data.main(["--quick", "--only-jpeg"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"(Pillow|OpenCV) decoding alone, 1 thread +[0-9.]+ images/s; limit", out)
    assert re.search(r"Data layer, 1 worker\(s\) +[0-9.]+ images/s", out)
    assert re.search(r"all workers / limit: [0-9.]+ \(goal >= 0.8: (met|not met)\)", out)
