"""NumPy float64 reference for multi-layer, optionally bidirectional RNN (tanh/relu), LSTM and GRU:
the forward pass and a hand-derived backpropagation through time.

Written independently of tinygrad_rnn (plain NumPy, PyTorch's equations, parameter names and
gate order) so that the package's gradients, which come out of its generic engine, can be
checked against derivatives worked out by hand. Layout is time-major: x (T, B, I); states
(L*D, B, H). No dropout.

The loss whose gradients ``backward`` returns is

    loss = sum(output * G_out) + sum(h_n * G_h) [+ sum(c_n * G_c) for LSTM],

so G_out, G_h, G_c are the upstream gradients of the three outputs.

Per step, with ``a`` the pre-activations and ``dh`` the gradient reaching h_t (from the output
at t plus from step t+1):

RNN   h = act(a),  a = W_ih x + b_ih + W_hh h_prev + b_hh
      da = dh * act'(a)   (tanh: 1 - h^2; relu: [a > 0])
LSTM  c = f c_prev + i g,  h = o tanh(c)
      do = dh tanh(c);  dc += dh o (1 - tanh(c)^2);  di = dc g;  df = dc c_prev;  dg = dc i
      dc_prev = dc f;  da = [di i(1-i), df f(1-f), dg (1-g^2), do o(1-o)]
GRU   r, z = sigmoid(gi_rz + gh_rz);  n = tanh(gi_n + r gh_n);  h = (1-z) n + z h_prev
      dn = dh (1-z);  dz = dh (h_prev - n);  da_n = dn (1 - n^2)
      dr = da_n gh_n;  dgi = [dr r(1-r), dz z(1-z), da_n];  dgh = [.., .., da_n r]
      dh_prev = dh z + dgh W_hh
and for every cell: dW_ih += da^T x, dW_hh += da^T h_prev, db += sum over the batch,
dx = da W_ih, dh_prev (+)= da W_hh.
"""

from __future__ import annotations

import numpy as np

GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


def param_names(num_layers: int, bidirectional: bool, bias: bool) -> list[str]:
    """PyTorch's parameter names, in its order."""
    names = []
    for layer in range(num_layers):
        for d in range(2 if bidirectional else 1):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            names += [f"weight_ih{sfx}", f"weight_hh{sfx}"] + ([f"bias_ih{sfx}", f"bias_hh{sfx}"] if bias else [])
    return names


def init_params(mode: str, input_size: int, hidden_size: int, num_layers: int, bidirectional: bool, bias: bool,
                rng: np.random.Generator, scale: float = 1.0) -> dict[str, np.ndarray]:
    """Random parameters of the right shapes, U(-scale/sqrt(H), scale/sqrt(H))."""
    g, dirs, k = GATES[mode] * hidden_size, 2 if bidirectional else 1, scale / np.sqrt(hidden_size)
    params = {}
    for name in param_names(num_layers, bidirectional, bias):
        layer = int(name.split("_l")[1].split("_")[0])
        if name.startswith("weight_ih"):
            shape = (g, input_size if layer == 0 else dirs * hidden_size)
        elif name.startswith("weight_hh"):
            shape = (g, hidden_size)
        else:
            shape = (g,)
        params[name] = rng.uniform(-k, k, shape)
    return params


# ---------------------------------------------------------------- one layer, one direction

def _cell_forward(mode: str, x: np.ndarray, h0: np.ndarray, c0: np.ndarray | None, w_ih: np.ndarray,
                  w_hh: np.ndarray, b_ih: np.ndarray, b_hh: np.ndarray) -> tuple:
    """Run forwards in time over x (T, B, I); returns hs (T, B, H), c_T, and the cache."""
    T, H = x.shape[0], h0.shape[1]
    hs, cache = [], []
    h, c = h0, c0
    for t in range(T):
        gi = x[t] @ w_ih.T + b_ih
        gh = h @ w_hh.T + b_hh
        if mode in ("RNN_TANH", "RNN_RELU"):
            a = gi + gh
            h_new = np.tanh(a) if mode == "RNN_TANH" else np.maximum(a, 0.0)
            cache.append((h, a, h_new))
        elif mode == "LSTM":
            a = gi + gh
            i, f, g, o = _sigmoid(a[:, :H]), _sigmoid(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), _sigmoid(a[:, 3 * H:])
            c_new = f * c + i * g
            tc = np.tanh(c_new)
            h_new = o * tc
            cache.append((h, c, i, f, g, o, tc))
            c = c_new
        else:  # GRU
            r = _sigmoid(gi[:, :H] + gh[:, :H])
            z = _sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
            n = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
            h_new = (1 - z) * n + z * h
            cache.append((h, r, z, n, gh[:, 2 * H:]))
        h = h_new
        hs.append(h)
    return np.stack(hs), c, cache


def _cell_backward(mode: str, x: np.ndarray, cache: list, dhs: np.ndarray, dh_T: np.ndarray,
                   dc_T: np.ndarray | None, w_ih: np.ndarray, w_hh: np.ndarray) -> tuple:
    """BPTT for one direction run forwards in time: returns dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh."""
    T = x.shape[0]
    H = w_hh.shape[1]
    dw_ih, dw_hh = np.zeros_like(w_ih), np.zeros_like(w_hh)
    db_ih, db_hh = np.zeros(w_ih.shape[0]), np.zeros(w_ih.shape[0])
    dx = np.zeros_like(x)
    dh, dc = dh_T.copy(), (dc_T.copy() if dc_T is not None else None)
    for t in range(T - 1, -1, -1):
        dh = dh + dhs[t]
        if mode in ("RNN_TANH", "RNN_RELU"):
            h_prev, a, h_new = cache[t]
            da = dh * (1 - h_new ** 2) if mode == "RNN_TANH" else dh * (a > 0)
            dgi = dgh = da
            dh_direct = 0.0
        elif mode == "LSTM":
            h_prev, c_prev, i, f, g, o, tc = cache[t]
            do = dh * tc
            dc = dc + dh * o * (1 - tc ** 2)
            di, df, dg = dc * g, dc * c_prev, dc * i
            dc = dc * f  # flows on to c_{t-1}
            da = np.concatenate([di * i * (1 - i), df * f * (1 - f), dg * (1 - g ** 2), do * o * (1 - o)], axis=1)
            dgi = dgh = da
            dh_direct = 0.0
        else:
            h_prev, r, z, n, gh_n = cache[t]
            dn = dh * (1 - z)
            dz = dh * (h_prev - n)
            dan = dn * (1 - n ** 2)
            dr = dan * gh_n
            dar, daz = dr * r * (1 - r), dz * z * (1 - z)
            dgi = np.concatenate([dar, daz, dan], axis=1)
            dgh = np.concatenate([dar, daz, dan * r], axis=1)
            dh_direct = dh * z
        dw_ih += dgi.T @ x[t]
        dw_hh += dgh.T @ h_prev
        db_ih += dgi.sum(0)
        db_hh += dgh.sum(0)
        dx[t] = dgi @ w_ih
        dh = dh_direct + dgh @ w_hh
    assert dh.shape[1] == H
    return dx, dh, dc, dw_ih, dw_hh, db_ih, db_hh


# ---------------------------------------------------------------- the whole stack

def forward(mode: str, params: dict[str, np.ndarray], x: np.ndarray, h0: np.ndarray, c0: np.ndarray | None,
            num_layers: int, bidirectional: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict]:
    """Returns output (T, B, D*H), h_n (L*D, B, H), c_n (LSTM, else None) and a cache for ``backward``."""
    dirs = 2 if bidirectional else 1
    inp = x
    h_n, c_n, caches = [], [], []
    for layer in range(num_layers):
        outs = []
        for d in range(dirs):
            k = layer * dirs + d
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            w_ih, w_hh = params["weight_ih" + sfx], params["weight_hh" + sfx]
            b_ih = params.get("bias_ih" + sfx, np.zeros(w_ih.shape[0]))
            b_hh = params.get("bias_hh" + sfx, np.zeros(w_ih.shape[0]))
            seq = inp[::-1] if d else inp  # the reverse direction is a forward run over the flipped sequence
            hs, c_T, cache = _cell_forward(mode, seq, h0[k], c0[k] if c0 is not None else None, w_ih, w_hh, b_ih, b_hh)
            outs.append(hs[::-1] if d else hs)
            h_n.append(hs[-1])
            c_n.append(c_T)
            caches.append((seq, cache, w_ih, w_hh, sfx))
        inp = np.concatenate(outs, axis=2)
    state = {"caches": caches, "mode": mode, "num_layers": num_layers, "dirs": dirs, "bias": "bias_ih_l0" in params,
             "x_shape": x.shape}
    return inp, np.stack(h_n), (np.stack(c_n) if mode == "LSTM" else None), state


def backward(state: dict, g_out: np.ndarray, g_h: np.ndarray, g_c: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Gradients of sum(output*g_out) + sum(h_n*g_h) [+ sum(c_n*g_c)] w.r.t. every parameter
    (by name), ``"input"``, ``"h0"`` and (LSTM) ``"c0"``."""
    mode, L, dirs = state["mode"], state["num_layers"], state["dirs"]
    grads: dict[str, np.ndarray] = {}
    dh0 = np.zeros_like(g_h)
    dc0 = np.zeros_like(g_h) if mode == "LSTM" else None
    d_out = g_out  # gradient reaching the current layer's output (T, B, D*H)
    H = g_h.shape[2]
    for layer in range(L - 1, -1, -1):
        d_in = None
        for d in range(dirs):
            k = layer * dirs + d
            seq, cache, w_ih, w_hh, sfx = state["caches"][k]
            dhs = d_out[:, :, d * H:(d + 1) * H]
            dhs = dhs[::-1] if d else dhs  # into the flipped time of that run
            dc_T = g_c[k] if mode == "LSTM" else None
            dx, dh, dc, dw_ih, dw_hh, db_ih, db_hh = _cell_backward(mode, seq, cache, dhs, g_h[k], dc_T, w_ih, w_hh)
            dx = dx[::-1] if d else dx
            d_in = dx if d_in is None else d_in + dx
            dh0[k] = dh
            if mode == "LSTM":
                dc0[k] = dc
            grads["weight_ih" + sfx], grads["weight_hh" + sfx] = dw_ih, dw_hh
            if state["bias"]:
                grads["bias_ih" + sfx], grads["bias_hh" + sfx] = db_ih, db_hh
        d_out = d_in
    grads["input"], grads["h0"] = d_out, dh0
    if mode == "LSTM":
        grads["c0"] = dc0
    return grads
