"""A character-level LSTM in NumPy alone: forward, hand-derived BPTT, clipping and Adam, no autograd.

It is the "what NumPy reaches without an engine" contender of ``demos/bench_lstm.py``:
the same model and training step as tinygrad_rnn's char-LM (one-hot input of V symbols,
multi-layer LSTM, Linear head, mean softmax cross-entropy, global-norm clipping at 5,
Adam), written for speed:

* the input projection of all T steps is one matmul per layer, before the time loop;
  so are the weight gradients after it (``dW_hh = dZ^T [h_0 .. h_{T-1}]`` over all steps);
* every per-step array lives in buffers allocated once per (T, B) and written with ``out=``;
* the gates are kept in the order (o, i, f, g), not PyTorch's (i, f, g, o), so that the
  three sigmoid gates are contiguous in the forward pass and the three gates whose
  gradient is ``dc * something`` (i, f, g) are contiguous in the backward pass; one tanh
  serves all four gates, since sigmoid(z) = 0.5 + 0.5 tanh(z / 2) (the halving is folded
  into a scaled copy of the weights);
* derivative factors that do not depend on the incoming gradient (o(1-o) tanh(c), ...)
  are computed for all steps at once before the backward loop, so the loop does 7 calls.

Weights go in and come out in PyTorch's layout and names (``rnn.weight_ih_l0`` (4H, I),
gates i, f, g, o; ``head.weight`` (V, H)): the names of tinygrad_rnn's ``CharRNN.state_dict()``.

Run ``python demos/numpy_lstm.py --check`` to compare its gradients and one training step
with tinygrad_rnn's in float64.
"""

from __future__ import annotations

import argparse

import numpy as np

Arrays = dict[str, np.ndarray]


class NumpyCharLSTM:
    """Char-LSTM training in plain NumPy; ``step(x, y)`` is one step of truncated BPTT.

    Args:
        params: PyTorch-layout arrays named ``rnn.{weight_ih,weight_hh,bias_ih,bias_hh}_l{l}``,
            ``head.weight``, ``head.bias`` (their dtype is the model's).
        lr, betas, eps: Adam's (PyTorch's defaults but lr).
        grad_clip: the global gradient-norm limit.
    """

    def __init__(self, params: Arrays, lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, grad_clip: float = 5.0) -> None:
        self.layers = sum(1 for k in params if k.startswith("rnn.weight_ih_l"))
        self.V, self.H = params["head.weight"].shape
        self.dtype = params["head.weight"].dtype
        H = self.H
        # Row order that turns PyTorch's gate blocks (i, f, g, o) into ours (o, i, f, g).
        self.rows = np.arange(4 * H).reshape(4, H)[[3, 0, 1, 2]].ravel()
        # sigmoid(z) = 0.5 + 0.5 tanh(z / 2): the o, i, f rows are pre-halved in the forward copy.
        self.half = np.concatenate([np.full(3 * H, 0.5), np.ones(H)]).astype(self.dtype)[:, None]
        self.p = {k: np.array(v[self.rows] if k.startswith("rnn.") else v, dtype=self.dtype, copy=True)
                  for k, v in params.items()}
        self.g = {k: np.zeros_like(v) for k, v in self.p.items()}
        self.m = {k: np.zeros_like(v) for k, v in self.p.items()}
        self.v = {k: np.zeros_like(v) for k, v in self.p.items()}
        self.lr, self.betas, self.eps, self.grad_clip, self.t = lr, betas, eps, grad_clip, 0
        self.state: tuple[np.ndarray, np.ndarray] | None = None  # (h, c), each (L, B, H), carried between steps
        self._shape: tuple[int, int] | None = None

    # ------------------------------------------------------------ buffers
    def _buffers(self, T: int, B: int) -> None:
        """Allocate every per-step array once per (T, B)."""
        if self._shape == (T, B):
            return
        self._shape, H, V, dt = (T, B), self.H, self.V, self.dtype
        z = lambda *s: np.zeros(s, dt)
        self.onehot = z(T * B, V)
        self.S = [z(T, B, 4 * H) for _ in range(self.layers)]  # gate activations o, i, f, g
        self.hs = [z(T + 1, B, H) for _ in range(self.layers)]  # h_0 .. h_T
        self.cs = [z(T + 1, B, H) for _ in range(self.layers)]  # c_0 .. c_T
        self.tc = [z(T, B, H) for _ in range(self.layers)]  # tanh(c_1 .. c_T)
        self.dZ, self.Q, self.otc, self.P = z(T, B, 4 * H), z(T, B, H), z(T, B, H), z(T, B, 3, H)
        self.tmpG, self.dh, self.dc, self.dh_rec, self.tmpH = z(B, 4 * H), z(B, H), z(B, H), z(B, H), z(B, H)

    def buffer_bytes(self) -> int:
        """Bytes of the per-step buffers this model keeps between steps (parameters, gradients and
        Adam's moments not counted)."""
        names = ("onehot", "S", "hs", "cs", "tc", "dZ", "Q", "otc", "P", "tmpG", "dh", "dc", "dh_rec", "tmpH")
        total = 0
        for name in names:
            value = getattr(self, name, None)
            for a in value if isinstance(value, list) else [value] if value is not None else []:
                total += a.nbytes
        return total

    # ------------------------------------------------------------ forward and backward
    def forward_backward(self, x: np.ndarray, y: np.ndarray, state: tuple[np.ndarray, np.ndarray] | None = None
                         ) -> float:
        """Mean cross-entropy of ids ``x`` (T, B) predicting ``y`` (T, B); gradients go to ``self.g``.

        ``state`` (h0, c0), each (L, B, H), defaults to zeros; the final (h, c) goes to ``self.state``.
        """
        T, B = x.shape
        H, L, p, g = self.H, self.layers, self.p, self.g
        self._buffers(T, B)
        self.onehot.fill(0)
        self.onehot[np.arange(T * B), x.reshape(-1)] = 1
        inp = self.onehot  # (T*B, I) input of the current layer
        for k in range(L):
            S, hs, cs, tc, tmp, tmpH = self.S[k], self.hs[k], self.cs[k], self.tc[k], self.tmpG, self.tmpH
            hs[0], cs[0] = (state[0][k], state[1][k]) if state is not None else (0, 0)
            w_ih = (p[f"rnn.weight_ih_l{k}"] * self.half).T  # (I, 4H), o/i/f columns halved
            w_hh = (p[f"rnn.weight_hh_l{k}"] * self.half).T
            b = (p[f"rnn.bias_ih_l{k}"] + p[f"rnn.bias_hh_l{k}"]) * self.half[:, 0]
            np.matmul(inp, w_ih, out=S.reshape(T * B, 4 * H))  # all steps' input projections at once
            S += b
            for t in range(T):
                a = S[t]
                np.matmul(hs[t], w_hh, out=tmp)
                a += tmp
                np.tanh(a, out=a)
                sig = a[:, :3 * H]
                sig *= 0.5
                sig += 0.5  # o, i, f are sigmoids now; g stays a tanh
                o, i, f, gg = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
                np.multiply(f, cs[t], out=cs[t + 1])
                np.multiply(i, gg, out=tmpH)
                cs[t + 1] += tmpH  # c = f c_prev + i g
                np.tanh(cs[t + 1], out=tc[t])
                np.multiply(o, tc[t], out=hs[t + 1])  # h = o tanh(c)
            inp = hs[1:].reshape(T * B, H)
        self.state = (np.stack([h[T] for h in self.hs]), np.stack([c[T] for c in self.cs]))

        # Head and loss: logits = h W^T + b; d(mean CE)/dlogits = (softmax - onehot(y)) / (T B).
        logits = inp @ p["head.weight"].T
        logits += p["head.bias"]
        logits -= logits.max(axis=1, keepdims=True)  # shifted: exp cannot overflow
        rows, ys = np.arange(T * B), y.reshape(-1)
        target = logits[rows, ys]  # a copy (advanced indexing), taken before exp overwrites logits
        np.exp(logits, out=logits)
        norm = logits.sum(axis=1)
        loss = float(np.mean(np.log(norm) - target))  # -log softmax[y] = log sum exp - z_y
        logits /= norm[:, None]  # now the softmax
        logits[rows, ys] -= 1
        logits /= T * B
        np.matmul(logits.T, inp, out=g["head.weight"])
        np.sum(logits, axis=0, out=g["head.bias"])
        dY = (logits @ p["head.weight"]).reshape(T, B, H)

        for k in reversed(range(L)):
            dY = self._layer_backward(k, dY, self.onehot if k == 0 else self.hs[k - 1][1:].reshape(T * B, H))
        return loss

    def _layer_backward(self, k: int, dY: np.ndarray, inp: np.ndarray) -> np.ndarray | None:
        """BPTT through layer k given dloss/dh_t (T, B, H); returns dloss/d(layer input), (T, B, I)."""
        T, B = self._shape
        H, p, g = self.H, self.p, self.g
        S4 = self.S[k].reshape(T, B, 4, H)
        o, i, f, gg = S4[:, :, 0], S4[:, :, 1], S4[:, :, 2], S4[:, :, 3]
        tc, c_prev, dZ, dZ4 = self.tc[k], self.cs[k][:-1], self.dZ, self.dZ.reshape(T, B, 4, H)
        # Factors that do not depend on the incoming gradient, for all steps in a few calls:
        # dz_o = dh tanh(c) o(1-o);  dc += dh o (1 - tanh(c)^2);
        # [dz_i, dz_f, dz_g] = dc [g i(1-i), c_prev f(1-f), i (1-g^2)];  dc_prev = dc f.
        np.multiply(tc, o * (1 - o), out=self.Q)
        np.multiply(o, 1 - tc * tc, out=self.otc)
        np.multiply(gg, i * (1 - i), out=self.P[:, :, 0])
        np.multiply(c_prev, f * (1 - f), out=self.P[:, :, 1])
        np.multiply(i, 1 - gg * gg, out=self.P[:, :, 2])
        w_hh = p[f"rnn.weight_hh_l{k}"]
        dh, dc, dh_rec, tmpH = self.dh, self.dc, self.dh_rec, self.tmpH
        dc.fill(0)
        dh_rec.fill(0)  # no gradient arrives from h_T, c_T: the next step detaches them
        for t in range(T - 1, -1, -1):
            np.add(dY[t], dh_rec, out=dh)
            np.multiply(dh, self.otc[t], out=tmpH)
            dc += tmpH
            np.multiply(dh, self.Q[t], out=dZ4[t, :, 0])
            np.multiply(dc[:, None, :], self.P[t], out=dZ4[t, :, 1:])
            dc *= f[t]
            np.matmul(dZ[t], w_hh, out=dh_rec)
        dZ2 = dZ.reshape(T * B, 4 * H)
        # Weight gradients over all steps at once.
        np.matmul(dZ2.T, self.hs[k][:-1].reshape(T * B, H), out=g[f"rnn.weight_hh_l{k}"])
        np.matmul(dZ2.T, inp, out=g[f"rnn.weight_ih_l{k}"])
        np.sum(dZ2, axis=0, out=g[f"rnn.bias_ih_l{k}"])
        g[f"rnn.bias_hh_l{k}"][...] = g[f"rnn.bias_ih_l{k}"]
        return (dZ2 @ p[f"rnn.weight_ih_l{k}"]).reshape(T, B, -1) if k > 0 else None

    # ------------------------------------------------------------ the optimizer
    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        """One training step from the carried state: forward, backward, clip, Adam. Returns the loss."""
        loss = self.forward_backward(x, y, self.state)
        grads = list(self.g.values())
        total = float(np.sqrt(sum(np.dot(a.ravel(), a.ravel()) for a in grads)))
        coef = self.grad_clip / (total + 1e-6)
        if coef < 1.0:
            for a in grads:
                a *= coef
        self.t += 1
        (b1, b2), lr, eps = self.betas, self.lr, self.eps
        step_size, bc2_sqrt = lr / (1 - b1 ** self.t), (1 - b2 ** self.t) ** 0.5
        for k, w in self.p.items():
            gk, m, v = self.g[k], self.m[k], self.v[k]
            tmp = np.multiply(gk, 1 - b1)
            m *= b1
            m += tmp
            np.multiply(gk, gk, out=tmp)
            tmp *= 1 - b2
            v *= b2
            v += tmp
            np.sqrt(v, out=tmp)
            tmp /= bc2_sqrt
            tmp += eps
            np.divide(m, tmp, out=tmp)
            tmp *= step_size
            w -= tmp
        return loss

    # ------------------------------------------------------------ PyTorch layout out
    def _export(self, arrays: Arrays) -> Arrays:
        inverse = np.argsort(self.rows)
        return {k: (v[inverse] if k.startswith("rnn.") else v).copy() for k, v in arrays.items()}

    def state_dict(self) -> Arrays:
        """The parameters, in PyTorch's layout and names."""
        return self._export(self.p)

    def grads(self) -> Arrays:
        """The last gradients, in PyTorch's layout and names."""
        return self._export(self.g)


# ---------------------------------------------------------------- the check against tinygrad_rnn

def compare_with_tinygrad(T: int = 5, B: int = 3, H: int = 6, layers: int = 2, V: int = 11,
                          seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """float64 gradients and losses of both implementations on one random case, by name.

    Starts from a random initial state, so carrying (h, c) is checked too.
    Returns ``{name: (numpy_value, tinygrad_value)}`` including ``"loss"``.
    """
    import tinygrad_rnn as tg
    from tinygrad_rnn.charlm import CharRNN
    from tinygrad_rnn.nn import functional as F

    rng = np.random.default_rng(seed)
    model = CharRNN(V, H, layers, "lstm", dtype="float64", generator=tg.Generator(seed))
    x, y = rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))
    h0, c0 = rng.standard_normal((layers, B, H)), rng.standard_normal((layers, B, H))
    logits, _ = model(tg.Tensor(x), (tg.Tensor(h0), tg.Tensor(c0)))
    loss = F.cross_entropy(logits.reshape(-1, V), tg.Tensor(y.reshape(-1)))
    loss.backward()
    ours = NumpyCharLSTM(model.state_dict())
    our_loss = ours.forward_backward(x, y, (h0, c0))
    theirs = {n: p.grad.numpy() for n, p in model.named_parameters()}
    out = {n: (g, theirs[n]) for n, g in ours.grads().items()}
    out["loss"] = (np.array(our_loss), np.array(loss.item()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare gradients with tinygrad_rnn (float64)")
    args = parser.parse_args()
    if not args.check:
        parser.print_help()
        return
    worst = 0.0
    for name, (a, b) in compare_with_tinygrad().items():
        err = float(np.max(np.abs(a - b) / (np.abs(b) + 1e-12)))
        worst = max(worst, err)
        print(f"{name:<20} max relative difference {err:.2e}")
    assert worst < 1e-8, f"NumPy LSTM gradients differ from tinygrad_rnn's (worst relative difference {worst:.2e})"
    print("gradients agree")


if __name__ == "__main__":
    main()
