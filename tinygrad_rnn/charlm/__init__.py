"""Character-level language models: corpus, batching, model, training loop, sampling, checkpoints.

This is the small API behind the ``tinygrad-rnn`` command; ``demos/char_lstm.py``
shows the same model trained with the public API in about 100 lines.
"""

from .checkpoint import CheckpointError, WriteError
from .corpus import Batches, Corpus, Vocab, builtin_corpus, load_corpus, unigram_bits
from .model import CharRNN
from .sampling import sample
from .trainer import TrainConfig, TrainingFaultError, evaluate, train

__all__ = ["Batches", "CharRNN", "CheckpointError", "Corpus", "TrainConfig", "TrainingFaultError", "Vocab",
           "WriteError", "builtin_corpus", "evaluate", "load_corpus", "sample", "train", "unigram_bits"]
