# brewnet's two everyday commands, on a fresh machine:
#   make lenet   venv + install + MNIST as LMDB + train LeNet (prints test accuracy)
#   make test    the test suite (test-numpy: the layers again with the numba kernels off)
#   make bench   brewnet against PyTorch (when installed): benchmarks/README.md
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
MNIST  := examples/mnist

.PHONY: lenet test test-numpy bench install proto lint clean-lenet

$(BIN)/brewnet: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(BIN)/brewnet

# One target makes both LMDBs, so `make -j` runs the conversion once (the command keeps a
# complete existing LMDB and builds only what is missing).
MNIST_STAMP := $(MNIST)/.lmdb-stamp

$(MNIST_STAMP): | $(BIN)/brewnet
	$(BIN)/brewnet data mnist $(MNIST)
	@touch $@

lenet: $(BIN)/brewnet $(MNIST_STAMP)
	$(BIN)/brewnet solve --solver $(MNIST)/lenet_solver.prototxt

test: $(BIN)/brewnet
	$(BIN)/python -m pytest -q

# numba is a default dependency; the NumPy bodies it replaces must stay correct on their own.
test-numpy: $(BIN)/brewnet
	BREWNET_KERNELS=numpy $(BIN)/python -m pytest -q tests/layers tests/kernels tests/solver

# PyTorch is the peer the benchmarks compare against, never a dependency of brewnet.
bench: $(BIN)/brewnet
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet torch \
		|| echo "PyTorch not installed: the benchmarks print brewnet's figures only"
	$(BIN)/python -m benchmarks

# Regenerate brewnet/proto/caffe_pb2.py after editing caffe.proto (tests/proto checks they agree).
proto: $(BIN)/brewnet
	$(BIN)/python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. brewnet/proto/caffe.proto

lint: $(BIN)/brewnet
	$(BIN)/ruff check .

clean-lenet:
	rm -rf $(MNIST)/mnist_train_lmdb $(MNIST)/mnist_test_lmdb $(MNIST_STAMP) $(MNIST)/lenet_iter_*
