"""The work behind brewnet's companion commands (Caffe's ``caffe test``, ``device_query`` and
``tools/extra``): scoring a net, describing the backends, parsing training logs into tables,
plotting them, and reporting training progress. The CLI modules only read flags and call in.
"""
