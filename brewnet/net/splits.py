"""Split insertion (Caffe's ``InsertSplits``): where one top feeds several bottoms (or a
bottom and a loss), a Split layer copies it so each consumer gets its own blob and the
gradients of all consumers are summed. Names follow Caffe's, so ``net.blobs`` lists the same
blob names BVLC Caffe lists."""

from __future__ import annotations

from collections import defaultdict

from ..proto import caffe_pb2


def split_layer_name(blob: str, layer: str, top_index: int) -> str:
    return f"{blob}_{layer}_{top_index}_split"


def split_blob_name(blob: str, layer: str, top_index: int, k: int) -> str:
    return f"{blob}_{layer}_{top_index}_split_{k}"


def insert_splits(param: caffe_pb2.NetParameter) -> caffe_pb2.NetParameter:
    """A copy of ``param`` with Split layers inserted after each multiply-consumed top."""
    return insert_splits_traced(param)[0]


def insert_splits_traced(param: caffe_pb2.NetParameter
                         ) -> tuple[caffe_pb2.NetParameter, list[int | None]]:
    """``insert_splits``, and for each layer of the result the index of the layer of
    ``param`` it copies (None for an inserted Split)."""
    last_producer: dict[str, tuple[int, int]] = {}
    source_of: dict[tuple[int, int], tuple[int, int]] = {}
    consumers: dict[tuple[int, int], int] = defaultdict(int)
    loss_weight: dict[tuple[int, int], float] = {}
    for i, layer in enumerate(param.layer):
        for j, name in enumerate(layer.bottom):
            if name not in last_producer:
                continue  # the compiler reports it, knowing more about what was meant
            source_of[(i, j)] = last_producer[name]
            consumers[last_producer[name]] += 1
        for j, name in enumerate(layer.top):
            last_producer[name] = (i, j)
        # Only explicit loss weights count as a use, as in Caffe.
        for j in range(min(len(layer.loss_weight), len(layer.top))):
            idx = last_producer[layer.top[j]]
            loss_weight[idx] = layer.loss_weight[j]
            if layer.loss_weight[j]:
                consumers[idx] += 1

    out = caffe_pb2.NetParameter()
    out.CopyFrom(param)
    del out.layer[:]
    used: dict[tuple[int, int], int] = defaultdict(int)
    origins: list[int | None] = []
    for i, layer in enumerate(param.layer):
        new = out.layer.add()
        new.CopyFrom(layer)
        origins.append(i)
        for j, name in enumerate(layer.bottom):
            src = source_of.get((i, j))
            if src is not None and consumers[src] > 1:
                src_layer = param.layer[src[0]].name
                new.bottom[j] = split_blob_name(name, src_layer, src[1], used[src])
                used[src] += 1
        for j, name in enumerate(layer.top):
            count = consumers[(i, j)]
            if count <= 1:
                continue
            weight = loss_weight.get((i, j), 0.0)
            if weight:
                # The loss moves to the split's first top, which no bottom takes; Caffe clears
                # all the producer's loss weights (a loss layer then gets its default 1 back).
                del new.loss_weight[:]
                used[(i, j)] += 1
            split = out.layer.add()
            origins.append(None)
            split.name = split_layer_name(name, layer.name, j)
            split.type = "Split"
            split.bottom.append(name)
            for k in range(count):
                split.top.append(split_blob_name(name, layer.name, j, k))
                if weight:
                    split.loss_weight.append(weight if k == 0 else 0.0)
    return out, origins
