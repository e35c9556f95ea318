"""The global random generator, reseeded by set_random_seed as Caffe's Caffe::set_random_seed.

Fillers, dropout masks and data shuffles all draw from here, so one seed fixes a whole run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

_rng = [np.random.default_rng()]


def set_random_seed(seed: int, *stream: int) -> None:
    """Reseed from ``seed``; ``stream`` (e.g. a rank) picks an independent stream of it."""
    _rng[0] = np.random.default_rng((int(seed), *map(int, stream)) if stream else int(seed))


def generator() -> np.random.Generator:
    return _rng[0]



@contextmanager
def left_as_it_was() -> Iterator[None]:
    """Run a block that draws from the generator as a side effect (drawing a net sets its
    layers up, and Data layers draw their seeds) without moving it for what comes after."""
    gen = _rng[0]
    state = gen.bit_generator.state
    try:
        yield
    finally:
        _rng[0] = gen
        gen.bit_generator.state = state
