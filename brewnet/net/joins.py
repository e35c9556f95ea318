"""Concat without its copy: at batch 1 a channel Concat's bottoms can be views of their sections
of its top, so the layers that compute them write there and the Concat copies nothing.
SqueezeNet's eight fire joins and GoogLeNet's nine inception joins copied every channel their
branches computed (0.41 of SqueezeNet 1.1's 7.6 ms forward at batch 1, 0.6-0.7 ms of
GoogLeNet's 27; 0.13 and 0.19 ms with joins, the layers' Python left).

The compiler marks a Concat bottom ``joined`` (``Concat.joined``) when every layer that writes
the blob computes into the blob's own array (``WRITERS``: not a Split, whose tops share their
bottom's array, nor a data layer, which hands over a new array per batch), all of them run
before the Concat, the blob is not another bottom of the same Concat or a joined bottom of an
earlier one, and nothing writes the Concat's top in place afterwards (that would change the
bottoms' values too; a Dropout, which a TEST forward leaves as it is, may). The Concat then
makes each joined bottom a view of its section whenever the section is contiguous (every axis
before the concat axis of length 1: a batch of one for channels) and skips a copy whose source
is its section; a larger batch reshapes the bottoms to arrays of their own and copies as
before. Every blob holds the values it holds without joins, and a forward from the Concat
(pycaffe's ``forward(start=...)``) takes what was written into a bottom, as the copy would;
what differs is that a joined bottom's array is part of the top's, so values written into one
show in the other before any forward (and ``numpy.shares_memory`` says so). TEST nets only
(their forwards are the ones that run at batch 1), NumPy arrays, and with fusion on
(``BREWNET_FUSE=0`` or ``Net(..., fuse=False)`` turns it off with the chains).
"""

from __future__ import annotations

from collections import defaultdict

from ..proto import caffe_pb2
from .plan import Plan

# Layers in place that a TEST forward leaves the values of (SqueezeNet's drop9 after its last
# join).
UNCHANGED = frozenset({"Dropout"})
# Layer types whose forward writes into the top blob's array as it is (in place or not).
WRITERS = frozenset({"Convolution", "Pooling", "LRN", "InnerProduct", "Eltwise", "Concat",
                     "ReLU", "BatchNorm", "Scale", "Bias", "Sigmoid", "TanH", "ELU"})


def join_concats(plan: Plan) -> None:
    """Mark the Concat bottoms of a TEST ``plan`` that may live in their top (module
    docstring) and make them views of it now, so the arrays pycaffe hands out stay the
    same from the first forward on."""
    if plan.phase != caffe_pb2.TEST:
        return
    writes: dict[int, list[int]] = defaultdict(list)  # blob id -> steps writing it
    for i, step in enumerate(plan.steps):
        for blob in step.top_ids:
            if blob is not None:
                writes[blob].append(i)
    claimed: set[int] = set()
    for i, step in enumerate(plan.steps):
        if step.layer.type != "Concat" or any(
                w > i and plan.steps[w].layer.type not in UNCHANGED
                for w in writes[step.top_ids[0]]):
            continue
        joined = tuple(
            step.bottom_ids.count(blob) == 1 and blob not in claimed and bool(writes[blob])
            and all(w < i and plan.steps[w].layer.type in WRITERS for w in writes[blob])
            for blob in step.bottom_ids)
        if any(joined):
            claimed.update(b for b, j in zip(step.bottom_ids, joined, strict=True) if j)
            step.layer.joined = joined
            step.layer.join(step.bottoms, step.tops)
