"""Caffe's update rules, by the name a solver's ``type`` gives (Caffe's SolverRegistry): one
module per rule, each with its formula in the docstring."""

from .adadelta import AdaDelta
from .adagrad import AdaGrad
from .adam import Adam
from .nesterov import Nesterov
from .rmsprop import RMSProp
from .rule import Report, UpdateRule
from .sgd import SGD

RULES: dict[str, type[UpdateRule]] = {
    rule.type_name: rule for rule in (SGD, Nesterov, AdaGrad, RMSProp, AdaDelta, Adam)}

__all__ = ["RULES", "SGD", "AdaDelta", "AdaGrad", "Adam", "Nesterov", "RMSProp", "Report",
           "UpdateRule"]
