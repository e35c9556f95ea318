"""pycaffe's ``caffe.Classifier``: a TEST-phase net with its input preprocessing configured, so
class scores of image files are one call away (``predict``), with optional 10-crop averaging.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from . import io
from .errors import BrewnetError
from .net import TEST, Net


def input_transformer(net: Net, model_file: str | os.PathLike, role: str,
                      mean: np.ndarray | None, input_scale: float | None,
                      raw_scale: float | None, channel_swap: Sequence[int] | None
                      ) -> io.Transformer:
    """The Transformer pycaffe's Classifier and Detector set up for a deploy net's first input:
    H×W×K images transposed to K×H×W, then the options that are given."""
    if not net.inputs:
        raise BrewnetError(f"{os.fspath(model_file)}: {role} needs a net with an Input layer "
                           "(a deploy prototxt); this one has none")
    in_ = net.inputs[0]
    transformer = io.Transformer({in_: net.blobs[in_].data.shape})
    transformer.set_transpose(in_, (2, 0, 1))
    if mean is not None:
        transformer.set_mean(in_, mean)
    if input_scale is not None:
        transformer.set_input_scale(in_, input_scale)
    if raw_scale is not None:
        transformer.set_raw_scale(in_, raw_scale)
    if channel_swap is not None:
        transformer.set_channel_swap(in_, channel_swap)
    return transformer


class Classifier(Net):
    """``Classifier(model_file, pretrained_file, image_dims=None, mean=None, input_scale=None,
    raw_scale=None, channel_swap=None)``: a :class:`Net` in TEST phase whose first input takes
    images through ``self.transformer`` (transposed to K×H×W, then the options given, in
    :class:`brewnet.io.Transformer`'s order). Images are first resized to ``image_dims``
    (default: the input's own size), then cropped to the input's size."""

    def __init__(self, model_file: str | os.PathLike, pretrained_file: str | os.PathLike,
                 image_dims: Sequence[int] | None = None, mean: np.ndarray | None = None,
                 input_scale: float | None = None, raw_scale: float | None = None,
                 channel_swap: Sequence[int] | None = None):
        super().__init__(model_file, TEST, weights=pretrained_file)
        self.transformer = input_transformer(self, model_file, "Classifier", mean, input_scale,
                                             raw_scale, channel_swap)
        in_ = self.inputs[0]
        self.crop_dims = np.array(self.blobs[in_].data.shape[2:])
        self.image_dims = np.array(image_dims if image_dims is not None else self.crop_dims)
        if self.image_dims.shape != (2,) or np.any(self.image_dims < self.crop_dims):
            raise BrewnetError(f"Classifier: image_dims {tuple(self.image_dims)} must be "
                               f"(height, width) at least the net's input size "
                               f"{tuple(self.crop_dims)}, which the crops take", blob=in_)

    def predict(self, inputs: Sequence[np.ndarray] | np.ndarray,
                oversample: bool = True) -> np.ndarray:
        """Class scores (N, classes) of N H×W×K images (``io.load_image``'s layout), from the
        net's first output (pycaffe's choice; outputs are in Caffe's sorted order). With
        ``oversample`` the scores are the mean over the ten crops of ``io.oversample``;
        without, the centre crop alone is classified."""
        if len(inputs) == 0:
            raise BrewnetError("Classifier.predict: no images given")
        images = io.resize_images(inputs, self.image_dims)
        if oversample:
            crops = io.oversample(images, self.crop_dims)
        else:
            (h, w), (ch, cw) = self.image_dims, self.crop_dims
            y, x = (h - ch) // 2, (w - cw) // 2
            crops = images[:, y:y + ch, x:x + cw]
        in_ = self.inputs[0]
        out = self.forward_all(**{in_: self.transformer.preprocess_batch(in_, crops)})
        predictions = out[self.outputs[0]]
        if oversample:
            predictions = predictions.reshape(len(predictions) // 10, 10, -1).mean(1)
        return predictions
