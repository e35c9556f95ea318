"""col2im for the convolution's batch-last bottom gradient (``ConvolutionLayer``'s patch-row
layout): one kernel row's column gradients added into the padded bottom gradient in one pass,
instead of one NumPy strided add (a full pass over the gradient) per kernel column.

Each destination cell receives its kernel columns in ascending order, as the NumPy loop adds
them, so the sums are bit-identical.
"""

from __future__ import annotations

from . import kernel


@kernel
def add_kernel_row(drow, dxpad, row0, sh, sw, dw):  # pragma: no cover - compiled
    """``dxpad[c, row0 + y*sh, j*dw + x*sw, :] += drow[c, j, y, x, :]`` for every ``j``;
    ``drow`` is ``(C, kw, OH, OW, N)``, ``dxpad`` ``(C, Hp, Wp, N)``."""
    channels, kw, oh, ow, n = drow.shape
    for c in range(channels):
        for y in range(oh):
            row = row0 + y * sh
            for j in range(kw):
                for x in range(ow):
                    col = j * dw + x * sw
                    for k in range(n):  # contiguous: vectorizes
                        dxpad[c, row, col, k] += drow[c, j, y, x, k]
