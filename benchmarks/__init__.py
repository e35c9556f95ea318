"""brewnet's speed and memory benchmarks (issue 6), each runnable as ``python -m
benchmarks.<name>`` from the repository root, all of them as ``python -m benchmarks``.

Every module prints a block meant to be pasted into ``benchmarks/README.md``: the machine,
then the figures. ``--quick`` runs each at tiny sizes (the smoke tests use it).
"""

from pathlib import Path

# brewnet before NumPy, as a user's script imports it: its OpenBLAS kernel choice is made
# before NumPy loads OpenBLAS (brewnet/blas_env.py), so the benchmarks time what users get.
import brewnet  # noqa: F401

# isort: split

REPO = Path(__file__).resolve().parents[1]
