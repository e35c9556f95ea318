"""Untrusted files never run code: brewnet's source has no unrestricted unpickling, no
``np.load`` that may unpickle, no eval/exec; the numpy-only unpicklers (MNIST's and
CIFAR-10's pickle releases) refuse every global that is not part of a numpy array; and a
malicious pickle disguised as a brewnet input is refused without running."""

from __future__ import annotations

import ast
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format

from brewnet.data import cifar10, mnist
from brewnet.data.transform import load_mean_file
from brewnet.errors import BrewnetError, DataError
from brewnet.net.net import Net
from brewnet.proto import caffe_pb2
from brewnet.solver.snapshot import read_state

PACKAGE = Path(__file__).resolve().parents[1] / "brewnet"
# The one allowed use of pickle: an Unpickler subclass whose find_class admits only numpy
# array reconstruction (MNIST's mnist.pkl.gz; CIFAR-10's pickles subclass it).
RESTRICTED_UNPICKLERS = {("data/mnist.py", "NumpyOnlyUnpickler")}
UNPICKLING = {"load", "loads", "Unpickler"}
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve",
                  "marshal"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _violations(source: str, rel: str) -> list[str]:
    """Unsafe constructs in one module, as ``path:line: what``."""
    tree = ast.parse(source, rel)
    found = []
    allowed_bases = {(rel, cls.name) for cls in ast.walk(tree)
                     if isinstance(cls, ast.ClassDef)} & RESTRICTED_UNPICKLERS
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            bases = {_dotted(b) for b in node.bases}
            if "pickle.Unpickler" in bases and (rel, node.name) not in allowed_bases:
                found.append(f"{rel}:{node.lineno}: class {node.name} subclasses "
                             "pickle.Unpickler")
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        head, _, tail = name.rpartition(".")
        if name in ("eval", "exec", "builtins.eval", "builtins.exec"):
            found.append(f"{rel}:{node.lineno}: {name}()")
        elif head in UNSAFE_MODULES and tail in UNPICKLING | {"open"}:
            found.append(f"{rel}:{node.lineno}: {name}()")
        elif name in ("np.load", "numpy.load"):
            safe = any(k.arg == "allow_pickle" and isinstance(k.value, ast.Constant)
                       and k.value.value is False for k in node.keywords)
            if not safe:
                found.append(f"{rel}:{node.lineno}: {name}() without allow_pickle=False")
        elif tail in ("load", "loads") and head.endswith(("yaml", "torch")):
            found.append(f"{rel}:{node.lineno}: {name}()")
    return found


def test_scanner_catches_what_it_is_for():
    """The scanner itself flags each construct (so an empty result means something)."""
    bad = ("import pickle, numpy as np\n"
           "pickle.loads(b'')\nnp.load('x.npy')\nnp.load('x.npy', allow_pickle=True)\n"
           "eval('1')\nexec('x=1')\nclass U(pickle.Unpickler): pass\n")
    assert len(_violations(bad, "fake.py")) == 6
    assert _violations("import numpy as np\nnp.load('x', allow_pickle=False)\n",
                       "fake.py") == []


def test_brewnet_source_has_no_unsafe_loading():
    """No pickle.load/loads, no np.load without allow_pickle=False, no eval/exec anywhere
    in brewnet/, except the restricted numpy-only unpickler."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        found += _violations(path.read_text(encoding="utf-8"), rel)
    assert not found, "unsafe loading in brewnet:\n" + "\n".join(found)


def test_the_allowed_unpickler_is_restricted():
    """NumpyOnlyUnpickler overrides find_class and persistent_load (the only ways a pickle
    reaches code), and its allow-list holds only numpy's array reconstruction."""
    cls = mnist.NumpyOnlyUnpickler
    assert cls.find_class is not pickle.Unpickler.find_class
    assert "persistent_load" in cls.__dict__
    for module, _ in cls.ALLOWED:
        assert module.split(".")[0] == "numpy"
    extra = set(cifar10.CifarUnpickler.ALLOWED) - set(cls.ALLOWED)
    assert extra == {("_codecs", "encode")}


class _Exploit:
    """Unpickling this runs ``os.system``; the test checks the marker never appears."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", [2, 4])
def test_fake_mnist_and_cifar_pickles_are_refused(tmp_path, protocol):
    """A pickle that calls os.system, or names builtins.eval or getattr, passed where the
    MNIST or CIFAR-10 pickles are read, is a DataError and nothing runs."""
    marker = tmp_path / "pwned"
    for payload in (pickle.dumps((np.zeros(3), _Exploit(marker)), protocol=protocol),
                    pickle.dumps(eval, protocol=protocol),
                    pickle.dumps(getattr, protocol=protocol)):
        with pytest.raises(DataError, match="refusing"):
            mnist.unpickle_arrays(payload, "mnist.pkl")
        with pytest.raises(DataError, match="refusing"):
            mnist.unpickle_arrays(payload, "data_batch_1", cifar10.CifarUnpickler)
    assert not marker.exists()


def test_object_array_npy_never_unpickled(tmp_path):
    """An .npy holding a pickled object array (np.save with allow_pickle) given to brewnet
    as a mean file, weights or solver state is refused as not being that format; the
    payload never runs."""
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.npy"
    np.save(evil, np.array([_Exploit(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError):  # numpy itself refuses it without allow_pickle
        np.load(evil, allow_pickle=False)
    with pytest.raises(DataError, match="evil.npy"):
        load_mean_file(str(evil))
    one_input = 'layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 } } }'
    net = Net(text_format.Parse(one_input, caffe_pb2.NetParameter()), caffe_pb2.TEST)
    with pytest.raises(BrewnetError, match="evil.npy"):
        net.copy_from(evil)
    with pytest.raises(BrewnetError, match="evil.npy"):
        read_state(evil)
    assert not marker.exists()
