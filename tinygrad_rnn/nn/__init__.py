"""Neural-network building blocks with PyTorch's names: modules, layers, functional, init, utils."""

from . import functional, init, utils
from .activation import Identity, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .dropout import Dropout
from .embedding import Embedding
from .flow import GradientFlow, gradient_flow
from .linear import Linear
from .module import Module, ModuleList, Parameter, Sequential
from .norm import LayerNorm
from .packing import (
    PackedSequence, pack_padded_sequence, pack_sequence, pad_packed_sequence, pad_sequence, unpack_sequence,
    unpad_sequence,
)
from .rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from .tbptt import TBPTT, tbptt

__all__ = [
    "functional", "init", "utils",
    "Module", "ModuleList", "Parameter", "Sequential",
    "Dropout", "Embedding", "LayerNorm", "Linear",
    "Identity", "LogSoftmax", "ReLU", "Sigmoid", "Softmax", "Tanh",
    "RNNCell", "LSTMCell", "GRUCell", "RNN", "LSTM", "GRU",
    "PackedSequence", "pack_padded_sequence", "pad_packed_sequence", "pad_sequence", "pack_sequence",
    "unpad_sequence", "unpack_sequence",
    "GradientFlow", "gradient_flow",
    "TBPTT", "tbptt",
]
