"""Feeding the data layers: Datum records (``datum``), LMDB reading and writing
(``lmdb_source``), Caffe's transform (``transform``), background prefetching (``prefetch``),
numbered resumable batches (``feed``), and the MNIST and CIFAR-10 conversions (``idx``,
``mnist``, ``cifar10``).
"""
