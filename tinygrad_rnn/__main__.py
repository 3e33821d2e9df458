"""``python -m tinygrad_rnn`` runs the ``tinygrad-rnn`` command."""

import sys

from .cli import main

sys.exit(main())
