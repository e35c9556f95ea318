"""The global random generator, reseeded by set_random_seed as Caffe's Caffe::set_random_seed.

Fillers, dropout masks and data shuffles all draw from here, so one seed fixes a whole run.
"""

from __future__ import annotations

import numpy as np

_rng = [np.random.default_rng()]


def set_random_seed(seed: int, *stream: int) -> None:
    """Reseed from ``seed``; ``stream`` (e.g. a rank) picks an independent stream of it."""
    _rng[0] = np.random.default_rng((int(seed), *map(int, stream)) if stream else int(seed))


def generator() -> np.random.Generator:
    return _rng[0]

