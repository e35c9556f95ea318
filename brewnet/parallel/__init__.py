"""Data-parallel training across processes and machines, with Caffe's multi-GPU semantics.

comm.py: the communicator interface and the single-process one; mpi.py and nccl.py: the MPI
(CPU) and NCCL (GPU) engines; sync.py: the gradient exchange a solver is joined with;
world.py: which ranks a process belongs to (from mpiexec's or launch.py's environment);
launch.py: one process per GPU; pycaffe.py: pycaffe's ``NCCL`` and its MPI counterpart.
Nothing here imports mpi4py or CuPy until a job of several ranks asks for it.
"""
