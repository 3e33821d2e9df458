"""Neural-network building blocks with PyTorch's names: modules, layers, functional, init, utils."""

from . import functional, init, utils
from .activation import Identity, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .dropout import Dropout
from .embedding import Embedding
from .linear import Linear
from .module import Module, ModuleList, Parameter, Sequential
from .norm import LayerNorm
from .rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from .tbptt import TBPTT, tbptt

__all__ = [
    "functional", "init", "utils",
    "Module", "ModuleList", "Parameter", "Sequential",
    "Dropout", "Embedding", "LayerNorm", "Linear",
    "Identity", "LogSoftmax", "ReLU", "Sigmoid", "Softmax", "Tanh",
    "RNNCell", "LSTMCell", "GRUCell", "RNN", "LSTM", "GRU",
    "TBPTT", "tbptt",
]
