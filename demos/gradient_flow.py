"""Vanishing and exploding gradients, measured: how much of a loss on the last step of a
100-step sequence reaches each earlier step, for a vanilla RNN, an LSTM and a GRU of one size.

Run:  python demos/gradient_flow.py [--out gradient_flow.png] [--length 100] [--gate-bias 3]

Left panel: ||dL/dx_t|| against the distance d = T - 1 - t from the loss (log scale), from
``nn.gradient_flow`` (the engine's own backward pass, nothing derived by hand). The vanilla
RNN's gradient is a product of d Jacobians diag(1 - h^2) W_hh and vanishes geometrically. At
PyTorch's default initialisation the LSTM's and GRU's vanish too (dashed): their gates sit
near sigmoid(0) = 0.5, and the LSTM's cell path multiplies forget gates, 0.5^d. Open the gates
(a bias of ``--gate-bias`` on the LSTM's forget gate and the GRU's update gate, as a trained
model learns to do for long memories) and the gradient crosses all 100 steps.

Right panel: a vanilla RNN with a large recurrent weight (W_hh of gain 3): the gradient
explodes with distance. Each step's share of dL/dW_hh (the engine's gradient with respect to a
per-step copy of W_hh) before and after ``clip_grad_norm_``: clipping rescales the whole update
to the allowed norm and keeps its direction, so the distant steps still dominate it.

The last line printed is one JSON object with the input-gradient norms at the listed distances.
"""

from __future__ import annotations



import argparse
import json
import math

import numpy as np

import tinygrad_rnn as tg
from tinygrad_rnn import nn

DISTANCES = [0, 1, 5, 10, 20, 50, 99]


def build(kind: str, inputs: int, hidden: int, seed: int, gate_bias: float = 0.0) -> nn.Module:
    """A one-layer model in float64 (norms reach 1e-25: no float32 underflow), PyTorch's init,
    plus ``gate_bias`` on the LSTM's forget gate or the GRU's update gate (rows H..2H)."""
    cls = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[kind]
    model = cls(inputs, hidden, dtype="float64", generator=tg.Generator(seed))
    if kind != "rnn":
        model.bias_ih_l0.data[hidden:2 * hidden] += gate_bias  # LSTM: i | f | g | o; GRU: r | z | n
    return model


def unrolled_loss(rnn: nn.RNN, x: tg.Tensor) -> tuple[tg.Tensor, list[tg.Tensor]]:
    """L = sum(h_T) of the RNN's equations unrolled by hand, with a copy of W_hh made for each step:
    the engine's gradient with respect to step t's copy is step t's share of dL/dW_hh."""
    w_ih, w_hh, b_ih, b_hh = rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0
    h = tg.zeros(x.shape[1], rnn.hidden_size, dtype=x.dtype)
    copies = []
    for t in range(x.shape[0]):
        w_t = w_hh * 1.0  # a node of its own
        copies.append(w_t)
        h = (x[t] @ w_ih.T + b_ih + h @ w_t.T + b_hh).tanh()
    return h.sum(), copies


def exploding(x: tg.Tensor, hidden: int, seed: int, gain: float, max_norm: float) -> dict:
    """The right panel's numbers: an RNN with W_hh ~ N(0, gain^2 / H), before and after clipping."""
    rnn = build("rnn", x.shape[2], hidden, seed)
    w = np.random.default_rng(seed).standard_normal((hidden, hidden)) * gain / math.sqrt(hidden)
    rnn.weight_hh_l0.data[...] = w
    flow = nn.gradient_flow(rnn, x)
    loss, copies = unrolled_loss(rnn, x)
    shares = [s.numpy() for s in tg.grad(loss, copies, retain_graph=True)]
    loss.backward()  # every parameter's gradient; W_hh's is the sum of the shares
    assert np.allclose(sum(shares), rnn.weight_hh_l0.grad.numpy(), rtol=1e-9, atol=1e-12 * abs(shares[0]).max())
    norm = lambda: math.sqrt(sum(float((p.grad.numpy() ** 2).sum()) for p in rnn.parameters()))  # noqa: E731
    w_before = np.linalg.norm(rnn.weight_hh_l0.grad.numpy())
    before = float(nn.utils.clip_grad_norm_(rnn.parameters(), max_norm))  # the norm before clipping (0-d Tensor)
    scale = np.linalg.norm(rnn.weight_hh_l0.grad.numpy()) / w_before  # what clipping did: one factor
    share_norms = np.array([np.linalg.norm(s) for s in shares])[::-1]  # by distance
    return {"flow": flow, "shares": share_norms, "clipped_shares": share_norms * scale, "before": before,
            "after": norm(), "scale": scale, "gain": gain, "max_norm": max_norm}


def plot(path: str, runs: dict, default_runs: dict, ex: dict, gate_bias: float, T: int) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no figure (pip install matplotlib)")
        return False
    from tinygrad_rnn.charlm.plot import save_figure

    colors = {"rnn": "tab:red", "lstm": "tab:blue", "gru": "tab:green"}
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
    d = np.arange(T)
    for kind, flow in runs.items():
        label = kind.upper() + ("" if kind == "rnn" else f" (gate bias {gate_bias:g})")
        left.semilogy(d, flow.input_norm, color=colors[kind], lw=2, label=label)
    for kind, flow in default_runs.items():
        left.semilogy(d, flow.input_norm, color=colors[kind], lw=1.2, ls="--", label=f"{kind.upper()} (default init)")
    left.set(xlabel="distance from the loss d = T - 1 - t (steps)", ylabel="||dL/dx_t|| (mean over the batch)",
             title=f"Gradient flow through time (T = {T}, same size for all three)")
    left.grid(alpha=0.3, which="both")
    left.legend(fontsize=8)

    right.semilogy(d, ex["flow"].input_norm, color="0.5", lw=1.2, label="||dL/dx_t||")
    # step 0's share is zero (h_{-1} = 0 multiplies it): drawn up to distance T - 2
    right.semilogy(d[:-1], ex["shares"][:-1], color="tab:red", lw=2, label="step t's share of dL/dW_hh, unclipped")
    right.semilogy(d[:-1], ex["clipped_shares"][:-1], color="tab:blue", lw=2,
                   label=f"... after clip_grad_norm_({ex['max_norm']:g})")
    right.axhline(ex["before"], color="tab:red", ls=":", lw=1.2, label=f"total ||grad|| = {ex['before']:.2g}")
    right.axhline(ex["after"], color="tab:blue", ls=":", lw=1.2, label=f"clipped total = {ex['after']:.3g}")
    right.set(xlabel="distance from the loss (steps)", ylabel="norm",
              title=f"Exploding: vanilla RNN, W_hh gain {ex['gain']:g}")
    right.grid(alpha=0.3, which="both")
    right.legend(fontsize=8, loc="lower right")
    save_figure(fig, path)
    return True


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="gradient_flow.png", help="the figure's path (default: %(default)s)")
    ap.add_argument("--length", type=int, default=100, help="sequence length T (default: %(default)s)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--inputs", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--gate-bias", type=float, default=3.0, help="added to the LSTM forget / GRU update gate bias")
    ap.add_argument("--gain", type=float, default=3.0, help="the exploding RNN's recurrent weight gain")
    ap.add_argument("--max-norm", type=float, default=1.0, help="clip_grad_norm_'s max_norm")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads (small matrices: one is fastest) [1]")
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args(argv)
    tg.threads.set_num_threads(args.threads)
    T = args.length
    x = tg.randn(T, args.batch, args.inputs, dtype="float64", generator=tg.Generator(args.seed + 1))
    runs = {k: nn.gradient_flow(build(k, args.inputs, args.hidden, args.seed, args.gate_bias), x)
            for k in ("rnn", "lstm", "gru")}
    default_runs = {k: nn.gradient_flow(build(k, args.inputs, args.hidden, args.seed), x) for k in ("lstm", "gru")}
    ex = exploding(x, args.hidden, args.seed, args.gain, args.max_norm)

    dist = [d for d in DISTANCES if d < T]
    print(f"T = {T}, B = {args.batch}, I = {args.inputs}, H = {args.hidden}; loss = sum of h at the last step")
    print("||dL/dx_t|| at distance " + "  ".join(f"{d:>8d}" for d in dist))
    for name, flow in [*runs.items(), *((k + " (default init)", f) for k, f in default_runs.items())]:
        sat = ", ".join(f"{k} {v:.0%}" for k, v in flow.saturated_fraction().items())
        print(f"{name:>20}: " + "  ".join(f"{v:8.1e}" for v in flow.at(dist)) + f"   saturated: {sat}")
    print(f"exploding RNN (gain {args.gain:g}): " + "  ".join(f"{v:8.1e}" for v in ex["flow"].at(dist)))
    sh, cl = ex["shares"], ex["clipped_shares"]
    print(f"clip_grad_norm_: total gradient norm {ex['before']:.3g} -> {ex['after']:.3g} (every gradient times "
          f"{ex['scale']:.3g}); share of dL/dW_hh from step T-1 {sh[0]:.3g} -> {cl[0]:.3g}, "
          f"from step 1 {sh[-2]:.3g} -> {cl[-2]:.3g}")
    if not args.no_plot and plot(args.out, runs, default_runs, ex, args.gate_bias, T):
        print(f"wrote {args.out}")
    result = {"distance": dist, **{k: f.at(dist) for k, f in runs.items()}}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
