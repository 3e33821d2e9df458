"""What a user watches: the tqdm progress bar and the loss plot (matplotlib, the ``demo`` extra)."""

from __future__ import annotations

import math
from typing import Any

from .checkpoint import write_atomic


class Progress:
    """A tqdm bar showing step, train loss, last validation loss, chars/s and ETA."""

    def __init__(self, total: int | None, initial: int, quiet: bool) -> None:
        self.bar = None
        if quiet:
            return
        try:
            from tqdm import tqdm
        except ImportError:  # tqdm is in the demo extra; without it training runs silently
            return
        self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, smoothing=0.1)
        self.initial = initial

    def update(self, row: dict[str, Any], last_val: float | None, budget: float | None, now: float) -> None:
        if self.bar is None:
            return
        if budget is not None and now > 0:
            # A time budget: the total is the step we will reach when the budget runs out.
            done = row["step"] - self.initial
            self.bar.total = self.initial + max(done, int(done * budget / max(now, 1e-9)))
        post = {"loss": f"{row['train_loss']:.3f}", "chars/s": f"{row['chars_per_sec']:,.0f}"}
        if last_val is not None:
            post["val"] = f"{last_val:.3f}"
        self.bar.set_postfix(post, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def save_loss_plot(rows: list[dict[str, Any]], path: str) -> bool:
    """Draw train (per step, smoothed) and validation losses to ``path``; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    steps = [r["step"] for r in rows]
    smooth, avg = [], None
    for r in rows:  # exponential moving average, so the curve is readable at every step
        avg = r["train_loss"] if avg is None else 0.9 * avg + 0.1 * r["train_loss"]
        smooth.append(avg)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, [r["train_loss"] for r in rows], color="tab:blue", alpha=0.25, lw=0.8)
    ax.plot(steps, smooth, color="tab:blue", label="train (EMA)")
    vals = [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]
    if vals:
        ax.plot(*zip(*vals), "o-", color="tab:orange", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/char)")
    ax.set_title("char-level language model")
    ax.grid(alpha=0.3)
    ax.legend()
    secondary = ax.secondary_yaxis("right", functions=(lambda n: n / math.log(2), lambda b: b * math.log(2)))
    secondary.set_ylabel("bits/char")
    save_figure(fig, path)
    return True


def save_figure(fig: Any, path: str) -> None:
    """Write a matplotlib figure to ``path`` as a PNG, atomically (never half a file), and close it."""
    import matplotlib.pyplot as plt

    try:
        write_atomic(path, lambda fh: fig.savefig(fh, format="png", dpi=100, bbox_inches="tight"))
    finally:
        plt.close(fig)
