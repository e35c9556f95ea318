"""Layer implementations, one module per family; importing this package imports every module
in it, and each registers its layer types, so adding a layer touches only its own module.

``brewnet.layers`` is also pycaffe's ``L`` namespace for NetSpec: any missing attribute whose
name starts with a capital letter (``L.Convolution``) is a NetSpec layer constructor. Layer
type names always start with a capital; module names never do, so the two cannot collide.
"""

from importlib import import_module
from pkgutil import iter_modules

for _module in sorted(m.name for m in iter_modules(__path__)):
    import_module(f"{__name__}.{_module}")


def __getattr__(name: str):
    if name[:1].isupper():
        from ..netspec import layers as _netspec_layers
        return getattr(_netspec_layers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
