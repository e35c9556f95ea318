"""brewnet: Caffe rebuilt on NumPy and CuPy."""
