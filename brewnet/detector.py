"""pycaffe's ``caffe.Detector``: R-CNN style detection, a TEST-phase net that classifies given
windows of images, each warped to the input size with optional surrounding context.

Windows are ``(ymin, xmin, ymax, xmax)`` in pixels. Selective search proposals (pycaffe's
``detect_selective_search``) need a MATLAB package brewnet does not wrap; any proposal method's
windows go through ``detect_windows``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from . import io
from .classifier import input_transformer
from .errors import BrewnetError, pycaffe_kind
from .net import TEST, Net


class Detector(Net):
    """``Detector(model_file, pretrained_file, mean=None, input_scale=None, raw_scale=None,
    channel_swap=None, context_pad=None)``: a :class:`Net` whose first input takes window
    crops through ``self.transformer``; ``context_pad`` pixels of context (in the warped
    input) surround each window, as R-CNN's, with the mean filling what lies off the image."""

    def __init__(self, model_file: str | os.PathLike, pretrained_file: str | os.PathLike,
                 mean: np.ndarray | None = None, input_scale: float | None = None,
                 raw_scale: float | None = None, channel_swap: Sequence[int] | None = None,
                 context_pad: int | None = None):
        super().__init__(model_file, TEST, weights=pretrained_file)
        self.transformer = input_transformer(self, model_file, "Detector", mean, input_scale,
                                             raw_scale, channel_swap)
        self.configure_crop(context_pad)

    def detect_windows(self, images_windows: Iterable[tuple[str, Sequence[Sequence[int]]]]
                       ) -> list[dict[str, Any]]:
        """Classify windows: ``images_windows`` pairs an image file with its windows. Returns
        one ``{'window', 'prediction', 'filename'}`` per window, in the order given; the
        prediction is the net's first output for that window."""
        pairs = [(name, np.asarray(windows, dtype=np.int64).reshape(-1, 4))
                 for name, windows in images_windows]
        in_ = self.inputs[0]
        size = self.blobs[in_].data.shape[2:]
        crops = []
        for name, windows in pairs:  # each image is read once; its windows differ in size
            image = io.load_image(name)
            crops.extend(io.resize_image(self.crop(image, w), size) for w in windows)
        if not crops:
            return []
        out = self.forward_all(**{in_: self.transformer.preprocess_batch(in_, np.stack(crops))})
        predictions = out[self.outputs[0]]
        found = [(name, window) for name, windows in pairs for window in windows]
        return [{"window": window, "prediction": prediction, "filename": name}
                for (name, window), prediction in zip(found, predictions, strict=True)]

    def detect_selective_search(self, image_fnames: Sequence[str]) -> list[dict[str, Any]]:
        """Refused: pycaffe runs the MATLAB selective_search_ijcv_with_python package here
        (an ImportError there without it, so this is one too)."""
        raise pycaffe_kind(BrewnetError, ImportError)(
            "detect_selective_search needs selective_search_ijcv_with_python (MATLAB), which "
            "brewnet does not support; compute windows with a proposal method of your choice "
            "and call detect_windows([(file, windows), ...])")

    def crop(self, im: np.ndarray, window: Sequence[int]) -> np.ndarray:
        """The H×W×K crop of ``window`` (ymin, xmin, ymax, xmax; max exclusive). With
        ``context_pad`` the window is grown so that, once warped to the input size, it has
        that many pixels of context on each side; parts off the image are mean-filled and
        the result already has the input's size."""
        window = [int(v) for v in window]
        if not self.context_pad:
            return im[window[0]:window[2], window[1]:window[3]]
        crop_size = self.blobs[self.inputs[0]].width  # R-CNN's square input
        scale = crop_size / (crop_size - self.context_pad * 2.0)
        half_h = (window[2] - window[0] + 1) / 2.0
        half_w = (window[3] - window[1] + 1) / 2.0
        center = np.array([window[0] + half_h, window[1] + half_w])
        box = np.round(np.tile(center, 2) + scale * np.array([-half_h, -half_w, half_h, half_w]))
        scale_h = crop_size / (box[2] - box[0] + 1)
        scale_w = crop_size / (box[3] - box[1] + 1)
        pad_y = round(max(0.0, -box[0]) * scale_h)  # context rows above the image
        pad_x = round(max(0.0, -box[1]) * scale_w)
        im_h, im_w = im.shape[:2]
        box = np.clip(box, 0, [im_h, im_w, im_h, im_w]).astype(np.int64)
        clip_h, clip_w = box[2] - box[0] + 1, box[3] - box[1] + 1
        if clip_h <= 0 or clip_w <= 0:
            raise BrewnetError(f"window {tuple(window)} lies outside the {im_h}×{im_w} image")
        crop_h = min(round(clip_h * scale_h), crop_size - pad_y)
        crop_w = min(round(clip_w * scale_w), crop_size - pad_x)
        context = io.resize_image(im[box[0]:box[2], box[1]:box[3]], (crop_h, crop_w))
        out = np.ones(self.crop_dims, dtype=np.float32) * self.crop_mean
        out[pad_y:pad_y + crop_h, pad_x:pad_x + crop_w] = context
        return out

    def configure_crop(self, context_pad: int | None) -> None:
        """Set the crop size (the input's H×W×K) and the context padding; with padding, the
        mean is brought back to image space (un-transposed, un-swapped, un-scaled) to fill
        context that lies off the image, so it preprocesses to zero."""
        in_ = self.inputs[0]
        transpose = self.transformer.transpose[in_]
        inverse = np.argsort(transpose)
        self.crop_dims = np.array(self.blobs[in_].data.shape[1:])[inverse]
        self.context_pad = context_pad
        if not context_pad:
            return
        mean = self.transformer.mean.get(in_)
        if mean is None:
            self.crop_mean = np.zeros(self.crop_dims, dtype=np.float32)
            return
        crop_mean = mean.transpose(inverse)
        channel_swap = self.transformer.channel_swap.get(in_)
        if channel_swap is not None:
            crop_mean = crop_mean[:, :, np.argsort(channel_swap)]
        raw_scale = self.transformer.raw_scale.get(in_)
        if raw_scale is not None:
            crop_mean = crop_mean / np.float32(raw_scale)
        self.crop_mean = crop_mean
