"""NetSpec: write a Caffe net in Python, get a NetParameter (pycaffe's ``caffe.net_spec``).

    from brewnet import layers as L, params as P
    n = NetSpec()
    n.data, n.label = L.Data(source="mnist_train_lmdb", backend=P.Data.LMDB, batch_size=64,
                             ntop=2, transform_param=dict(scale=1 / 256))
    n.ip = L.InnerProduct(n.data, num_output=10, weight_filler=dict(type="xavier"))
    n.loss = L.SoftmaxWithLoss(n.ip, n.label)
    print(n.to_proto())
"""

from .assign import assign_proto, param_name_dict
from .namespaces import Layers, Parameters, layers, params
from .spec import Function, NetSpec, Top, to_proto

__all__ = ["Function", "Layers", "NetSpec", "Parameters", "Top", "assign_proto", "layers",
           "param_name_dict", "params", "to_proto"]
