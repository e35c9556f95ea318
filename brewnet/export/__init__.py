"""Weights that travel: brewnet nets written for other runtimes (ONNX models).

``export_onnx(net, "model.onnx")`` writes a compiled deploy net with its weights; the ``onnx``
package is needed only when exporting (``pip install brewnet[onnx]``).
"""

from .onnx_graph import export_onnx, net_to_onnx

__all__ = ["export_onnx", "net_to_onnx"]
