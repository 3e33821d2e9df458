"""Regenerate the tape pictures of docs/tape.md: the tape of a 3-step LSTM, as Graphviz DOT and SVG.

Run from the repository root:  python docs/scripts/tape_picture.py

It writes docs/img/lstm_tape.dot (every op, boxed by layer and time step) and
docs/img/lstm_tape_steps.dot (one box per step), then renders each to .svg with Graphviz's
``dot`` program (the SVGs in the repository come from Debian's ``graphviz`` package,
``apt-get install graphviz``). Without ``dot`` it writes the DOT files, says so, and exits with
status 1. tests/test_docs.py checks that the committed .dot files are what this script makes
now, so the pictures cannot drift from the code.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import tinygrad_rnn as tg

IMG = Path(__file__).resolve().parent.parent / "img"


def lstm_tape_dots() -> dict[str, str]:
    """{file name: DOT text} for the tape of ``LSTM(2, 3)`` over 3 steps, loss = sum of the outputs."""
    lstm = tg.nn.LSTM(2, 3, generator=tg.Generator(0))
    x = tg.randn(3, 1, 2, requires_grad=True, generator=tg.Generator(1))  # T=3, B=1, I=2
    out, _ = lstm(x)
    loss = out.sum()
    names = {"x": x, **dict(lstm.named_parameters())}
    return {"lstm_tape.dot": tg.to_dot(loss, names=names, rankdir="TB") + "\n",
            "lstm_tape_steps.dot": tg.to_dot(loss, group="step", names=names, rankdir="TB") + "\n"}


def main() -> int:
    IMG.mkdir(exist_ok=True)
    dot = shutil.which("dot")
    for name, text in lstm_tape_dots().items():
        path = IMG / name
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
        if dot is not None:
            subprocess.run([dot, "-Tsvg", str(path), "-o", str(path.with_suffix(".svg"))], check=True)
            print(f"wrote {path.with_suffix('.svg')}")
    if dot is None:
        print("Graphviz's dot is not installed (apt-get install graphviz): the SVGs were not rendered",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
