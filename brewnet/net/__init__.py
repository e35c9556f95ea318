"""The compiler: NetParameter → a runnable graph of layers (``Net``)."""

from .net import TEST, TRAIN, Net

__all__ = ["Net", "TRAIN", "TEST"]
