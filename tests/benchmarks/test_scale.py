"""benchmarks.scale: the ring all-reduce model, and a quick run on 1 and 2 MPI ranks."""

import pytest

from benchmarks import scale
from tests.parallel.helpers import needs_mpi


def test_ring_allreduce_cost():
    """2(N-1)/N of the bytes cross each link, in 2(N-1) messages: 1 GB on 2 ranks at
    8 Gb/s takes 1 s plus 2 latencies."""
    assert scale.ring_seconds(1e9, 2, 8) == pytest.approx(1 + 2 * scale.HOP_LATENCY_S)
    assert scale.ring_seconds(1e9, 64, 8) == pytest.approx(2 * 63 / 64 + 126 * scale.HOP_LATENCY_S)


def test_model_marks_where_communication_dominates():
    """A net whose all-reduce outlasts its compute loses most of its efficiency."""
    heavy, light = scale.model_lines({"heavy": (10**9, 1.0), "light": (10, 1000.0)})[1:]
    assert "100%" in light and " 0%" in heavy.replace("  ", " ")


@pytest.mark.slow
@needs_mpi
def test_quick_run_prints_every_figure(capsys):
    assert scale.main(["--quick"]) == 0
    out = capsys.readouterr().out
    for text in ("1 rank,  1 thread", "2 ranks, 1 thread each, layer_wise_reduce: true",
                 "layer-wise reduction hides", "CaffeNet", "ResNet-50"):
        assert text in out
