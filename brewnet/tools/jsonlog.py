"""``--log-json FILE``: the training log as JSON lines, one object per display and per test,
for tools and notebooks that would otherwise scrape the text log.

Each line is flushed as it is written, so ``pandas.read_json(path, lines=True)`` can follow a
run in progress. Records (see ``Solver.add_reporter``) gain ``seconds`` since training began
and, for displays, ``images_per_s``; NaN and infinities become ``null``. The file is a stream,
written in place rather than atomically: a crash leaves every line up to it.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ..errors import BrewnetError
from ..solver.report import short_float


def _plain(value: Any) -> Any:
    """Numbers (float32 in the solver) in their shortest form; NaN and infinities as None."""
    return short_float(value) if isinstance(value, float) else value


class JsonLog:
    """A reporter for ``Solver.add_reporter`` writing to ``path`` (created or truncated). The
    CLI opens it before building the nets, to fail fast on a bad path, and ``attach``-es it
    when training starts."""

    def __init__(self, path: str | os.PathLike):
        try:
            self._file = open(path, "w", encoding="utf-8")  # closed by close()
        except OSError as e:
            raise BrewnetError(f"cannot write the JSON log {path}: {e.strerror}; give a path "
                               "in an existing, writable folder") from None
        self.images_per_iter: int | None = None
        self._start = time.perf_counter()

    def attach(self, solver: Any, images_per_iter: int | None = None) -> None:
        """Report ``solver``'s displays and tests from now on; ``seconds`` count from here.
        ``images_per_iter``: images in one iteration (batch size × iter_size), for
        ``images_per_s``; None when the net's batch size is unknown."""
        self.images_per_iter = images_per_iter
        self._start = time.perf_counter()
        solver.add_reporter(self)

    def __call__(self, record: dict[str, Any]) -> None:
        out = {key: _plain(value) for key, value in record.items()}
        out["seconds"] = round(time.perf_counter() - self._start, 6)
        rate = out.get("iter_per_s")
        if rate is not None and self.images_per_iter:
            out["images_per_s"] = round(rate * self.images_per_iter, 1)
        self._file.write(json.dumps(out, allow_nan=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()
