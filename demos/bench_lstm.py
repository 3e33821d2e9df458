"""Char-RNN training speed, measured fairly: tinygrad_rnn against PyTorch, NumPy by hand and the GEMM floor.

Run:  python demos/bench_lstm.py S M L [--model lstm|gru|rnn] [--device cpu|cuda] [--dtype float32|float64]
          [--rounds 3] [--steps 10] [--warmup 4] [--contenders tinygrad,tinygrad-fused,torch,torch-composed,numpy,floor]
          [--json PATH] [--hidden 64,128,...] [--sweep [--plot PATH]] [--in-process]

Fair means: every contender runs in a FRESH PROCESS of its own, with its own default settings
(PyTorch as users get it: its default threads, no OpenMP tweaks; NumPy with its default BLAS
threads), so that no contender inherits another's thread pools, caches or allocator state.
The runs are interleaved: each round runs every contender once, in a shuffled order; each run
builds the model from the same saved initial weights, trains on the same saved batches
(a check step from the zero state, warm-up steps, then the timed steps, carrying the state)
and reports its chars/s from the median step. The table gives the median over rounds and the
spread (min-max). The first-step losses must agree to the dtype's rounding (an assert): the
contenders do the same work. See ``demos/bench_contenders.py`` for the contenders.

Beside each ratio to PyTorch stands the ratio to the GEMM FLOOR, measured in the same run in a
process of its own: every matrix product of one tinygrad_rnn step (the same shapes, transposes
and memory layouts, read from the step's own captured program), each timed alone and summed.
It is what the step would cost if everything but the matrix products were free.

Peak memory per step: for the NumPy contenders, what one step allocates at its peak
(tracemalloc) plus the buffers they keep between steps; for PyTorch on the CPU the process's
resident-memory peak above its size after setup; on the GPU each allocator's own figure.

``--in-process`` runs all contenders in this one process, step by step, as a quick check. It is
NOT fair (PyTorch's threads and the contenders' memory share one process) and is labelled so.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import tinygrad_rnn as tg
from tinygrad_rnn.charlm.bench import CAPTURE_CALLS, PRESETS, VOCAB, BenchConfig, synthetic_batches
from tinygrad_rnn.charlm.model import CharRNN

HERE = Path(__file__).resolve().parent
CHECKOUT = Path(tg.__file__).resolve().parent.parent
ALL = ("tinygrad", "tinygrad-plain", "tinygrad-fused", "torch", "torch-composed", "numpy", "floor")
DEFAULT = "tinygrad,tinygrad-fused,torch,torch-composed,numpy,floor"
LOSS_RTOL = {"float32": 1e-5, "float64": 1e-10}


# ---------------------------------------------------------------- one configuration

def available(contenders: list[str], cfg: BenchConfig) -> tuple[list[str], list[str]]:
    """The contenders that apply to ``cfg`` here, and notes on those left out."""
    keep, notes = [], []
    try:
        import importlib.util

        has_torch = importlib.util.find_spec("torch") is not None
    except ValueError:
        has_torch = False
    for c in contenders:
        if c.startswith("torch") and not has_torch:
            notes.append(f"{c}: PyTorch is not installed")
        elif c == "numpy" and (cfg.model != "lstm" or cfg.device != "cpu"):
            notes.append("numpy: the hand-written model is an LSTM on the CPU")
        elif c == "tinygrad-fused" and cfg.model != "lstm":
            notes.append("tinygrad-fused: the fused cell is an LSTM's")
        else:
            keep.append(c)
    return keep, notes


def write_spec(cfg: BenchConfig, folder: str) -> str:
    """Save the initial weights and the batches every contender uses; returns the spec's path."""
    model = CharRNN(VOCAB, cfg.hidden, cfg.layers, cfg.model, dtype=cfg.dtype, generator=tg.Generator(cfg.seed))
    batches, data = [], synthetic_batches(dataclasses.replace(cfg, device="cpu"))
    for _ in range(1 + cfg.warmup + cfg.steps):
        x, y = next(data)
        batches.append(np.concatenate([x, y.reshape(x.shape)[-1:]], axis=0))  # (T + 1, B) ids
    data_path = os.path.join(folder, f"{cfg.name.replace('/', '_')}.npz")
    np.savez(data_path, batches=np.stack(batches), **{f"w:{k}": v for k, v in model.state_dict().items()})
    spec_path = data_path[:-4] + ".json"
    with open(spec_path, "w") as fh:
        json.dump({"config": dataclasses.asdict(cfg), "data": data_path}, fh)
    return spec_path


def run_worker(contender: str, spec: str) -> dict:
    """One contender in a fresh process, with this process's environment as it is (no tweaks)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(CHECKOUT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.run([sys.executable, str(HERE / "bench_contenders.py"), contender, spec], capture_output=True,
                          text=True, env=env, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"{contender} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def summarise(runs: list[dict]) -> dict:
    cps = [r["chars_per_sec"] for r in runs]
    out = {"chars_per_sec": cps, "median": statistics.median(cps), "min": min(cps), "max": max(cps),
           "peak_bytes": None, "first_loss": runs[0].get("first_loss")}
    peaks = [r["peak_bytes"] for r in runs if r.get("peak_bytes") is not None]
    if peaks:
        out["peak_bytes"], out["peak_kind"] = int(statistics.median(peaks)), runs[0]["peak_kind"]
    for key in ("replayed", "replay_fallbacks", "torch", "torch_threads", "gemms", "seconds"):
        if key in runs[-1]:
            out[key] = runs[-1][key]
    return out


def measure(cfg: BenchConfig, contenders: list[str], rounds: int, folder: str) -> dict:
    """``rounds`` rounds of every contender, each in a fresh process, in a shuffled order per round."""
    spec = write_spec(cfg, folder)
    runs: dict[str, list[dict]] = {c: [] for c in contenders}
    rng = random.Random(cfg.seed)
    for r in range(rounds):
        order = list(contenders)
        rng.shuffle(order)
        for c in order:
            runs[c].append(run_worker(c, spec))
        print(f"  round {r + 1}/{rounds} done ({', '.join(order)})", flush=True)
    result = {"contenders": {c: summarise(v) for c, v in runs.items() if c != "floor"}}
    if "floor" in runs:
        result["floor"] = summarise(runs["floor"])
    check_losses(cfg, result["contenders"])
    return result


def check_losses(cfg: BenchConfig, results: dict) -> None:
    losses = {c: r["first_loss"] for c, r in results.items()}
    if not losses:
        return
    ref_name = "tinygrad" if "tinygrad" in losses else next(iter(losses))
    ref = losses[ref_name]
    for name, loss in losses.items():
        assert abs(loss - ref) <= LOSS_RTOL[cfg.dtype] * abs(ref), (
            f"config {cfg.name}: the first-step loss of {name} is {loss!r}, {ref_name}'s is {ref!r}: the contenders "
            f"do not compute the same thing (relative difference {abs(loss - ref) / abs(ref):.1e})")


# ---------------------------------------------------------------- the report

def report(cfg: BenchConfig, result: dict, notes: list[str]) -> None:
    print(f"\nconfig {cfg.name}: {cfg.model} H={cfg.hidden} layers={cfg.layers} B={cfg.batch} T={cfg.seq_len} "
          f"{cfg.dtype} {cfg.device}; median (min-max) over rounds, each contender in a fresh process; "
          "first-step losses agree")
    rows = dict(result["contenders"])
    if "floor" in result:
        rows["floor (GEMMs)"] = result["floor"]
    torch_cps = rows.get("torch", {}).get("median")
    floor_cps = result.get("floor", {}).get("median")
    print(f"  {'contender':<16}{'chars/s':>12}  {'(min-max)':<19}{'x torch':>8}{'x floor':>9}  peak step memory")
    for name, r in rows.items():
        spread = f"({r['min']:,.0f}-{r['max']:,.0f})"
        ratio_t = f"{r['median'] / torch_cps:.2f}x" if torch_cps else "-"
        ratio_f = f"{r['median'] / floor_cps:.2f}x" if floor_cps else "-"
        mem = f"{r['peak_bytes'] / 1e6:,.1f} MB ({r['peak_kind']})" if r.get("peak_bytes") is not None else "-"
        print(f"  {name:<16}{r['median']:>12,.0f}  {spread:<19}{ratio_t:>8}{ratio_f:>9}  {mem}")
        if r.get("replay_fallbacks"):
            print(f"    (normal path in some steps: {r['replay_fallbacks']})")
    for note in notes:
        print(f"  left out: {note}")


def machine() -> dict:
    """What the figures were measured on."""
    info: dict = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                  "python": platform.python_version(), "numpy": np.__version__, "tinygrad_rnn": tg.__version__,
                  "load_average": list(os.getloadavg())}
    try:
        with open("/proc/cpuinfo") as fh:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["blas"] = f"{blas.get('name')} {blas.get('version')}"
    except Exception:
        info["blas"] = "unknown"
    try:
        import importlib.metadata

        info["torch"] = importlib.metadata.version("torch")
    except Exception:
        info["torch"] = None
    return info


# ---------------------------------------------------------------- the quick, unfair check

def in_process(cfg: BenchConfig, contenders: list[str]) -> None:
    """All contenders in this process, interleaved step by step: a quick check, NOT a fair measurement."""
    sys.path.insert(0, str(HERE))
    import bench_contenders as bc

    folder = tempfile.mkdtemp(prefix="bench_lstm_")
    with open(write_spec(cfg, folder)) as fh:
        spec = json.load(fh)
    data = np.load(spec["data"])
    weights = {k[2:]: data[k] for k in data.files if k.startswith("w:")}
    steps = {}
    for c in contenders:
        if c in bc.TINYGRAD:
            steps[c] = bc.tinygrad_step(cfg, weights, c)[0]
        elif c.startswith("torch"):
            steps[c] = bc.torch_step(cfg, weights, c == "torch-composed")[0]
        elif c == "numpy":
            steps[c] = bc.numpy_step(weights)[0]
    batches = [(b[:-1], b[1:]) for b in data["batches"]]
    first = {c: s(*batches[0]) for c, s in steps.items()}
    check_losses(cfg, {c: {"first_loss": v} for c, v in first.items()})
    times: dict[str, list[float]] = {c: [] for c in steps}
    names, rng = list(steps), random.Random(cfg.seed)
    for i, (x, y) in enumerate(batches[1:]):
        rng.shuffle(names)
        for c in names:
            t0 = time.perf_counter()
            steps[c](x, y)
            if i >= cfg.warmup:
                times[c].append(time.perf_counter() - t0)
    print(f"\nconfig {cfg.name} IN ONE PROCESS (a quick check, NOT a fair measurement: do not quote these ratios)")
    base = statistics.median(times["torch"]) if "torch" in times else None
    for c, t in times.items():
        cps = cfg.batch * cfg.seq_len / statistics.median(t)
        ratio = f"{base / statistics.median(t):.2f}x torch" if base else ""
        print(f"  {c:<16}{cps:>12,.0f} chars/s  {ratio}")


def plot_sweep(configs: dict, path: str) -> None:
    """chars/s against H for every contender (median, with the min-max spread as error bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hidden = [int(name.split("H=")[1]) for name in configs]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    names = list(next(iter(configs.values()))["contenders"]) + ["floor"]
    for name in names:
        rows = [c["contenders"].get(name) if name != "floor" else c.get("floor") for c in configs.values()]
        if any(r is None for r in rows):
            continue
        med = [r["median"] for r in rows]
        err = [[m - r["min"] for m, r in zip(med, rows)], [r["max"] - m for m, r in zip(med, rows)]]
        ax.errorbar(hidden, med, yerr=err, marker="o", capsize=3, label=name, linestyle=":" if name == "floor" else "-")
    ax.set(xscale="log", yscale="log", xlabel="hidden size H", ylabel="training chars/s",
           title="char-RNN training, each contender in a fresh process")
    ax.set_xticks(hidden, [str(h) for h in hidden], minor=False)
    ax.set_xticks([], minor=True)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"plot saved to {path}")


# ---------------------------------------------------------------- command line

def configs(args: argparse.Namespace) -> list[BenchConfig]:
    out = []
    for name in args.configs:
        for h in args.hidden or [None]:
            cfg = BenchConfig.preset(name, hidden=h, model=args.model, dtype=args.dtype, device=args.device,
                                     steps=args.steps, warmup=args.warmup)
            if h is not None:
                cfg = dataclasses.replace(cfg, name=f"{name.upper()}/H={h}")
            cfg.validate()
            out.append(cfg)
    return out


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="*", default=["S", "M", "L"], help="S, M and/or L [all three]")
    parser.add_argument("--model", choices=["lstm", "gru", "rnn"], default="lstm")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every contender [3]")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per run [10]")
    parser.add_argument("--warmup", type=int, default=CAPTURE_CALLS,
                        help=f"untimed steps after the check step [{CAPTURE_CALLS}: replay captures the step in them]")
    parser.add_argument("--contenders", default=DEFAULT, help=f"comma-separated, from {', '.join(ALL)} [{DEFAULT}]")
    parser.add_argument("--hidden", type=lambda s: [int(h) for h in s.split(",")], help="override H (a list: a sweep)")
    parser.add_argument("--sweep", action="store_true", help="--hidden 64,128,256,512 and a plot of chars/s against H")
    parser.add_argument("--plot", default="bench_lstm_sweep.png", help="where --sweep saves its plot")
    parser.add_argument("--json", help="write every figure to this JSON file")
    parser.add_argument("--in-process", action="store_true", help="quick check in one process (NOT fair)")
    args = parser.parse_args(argv)
    bad = [c for c in args.configs if c.upper() not in PRESETS]
    wanted = [c.strip() for c in args.contenders.split(",") if c.strip()]
    unknown = [c for c in wanted if c not in ALL]
    if bad or unknown or args.rounds < 1:
        parser.error(f"unknown config {bad[0]!r}" if bad else f"unknown contender {unknown[0]!r}" if unknown
                     else "--rounds must be >= 1")
    if args.sweep:
        args.hidden = args.hidden or [64, 128, 256, 512]
    if args.warmup < CAPTURE_CALLS and any(c in ("tinygrad", "tinygrad-fused") for c in wanted):
        print(f"note: --warmup {args.warmup} is below the {CAPTURE_CALLS} steps replay needs to capture the step: "
              "tinygrad_rnn's first timed steps will not be replays")
    info = machine()
    print(f"{info['cpu']}, {info['cores']} cores, NumPy {info['numpy']} ({info['blas']}), PyTorch {info['torch']}, "
          f"load average {info['load_average'][0]:.2f}", flush=True)
    results: dict = {"configs": {}, "machine": info}
    with tempfile.TemporaryDirectory(prefix="bench_lstm_") as folder:
        for cfg in configs(args):
            contenders, notes = available(wanted, cfg)
            if args.in_process:
                in_process(cfg, [c for c in contenders if c != "floor"])
                continue
            print(f"config {cfg.name}: {len(contenders)} contenders x {args.rounds} rounds", flush=True)
            results["configs"][cfg.name] = measure(cfg, contenders, args.rounds, folder)
            report(cfg, results["configs"][cfg.name], notes)
    info["load_average_end"] = list(os.getloadavg())
    busy = info["load_average_end"][0] > 0.75 * (info["cores"] or 1)
    print(f"\nload average at the end {info['load_average_end'][0]:.2f}"
          + (" (other work shared the CPUs: figures are noisy)" if busy else ""))
    if args.sweep and not args.in_process:
        plot_sweep(results["configs"], args.plot)
    if args.json and not args.in_process:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1, default=str)
        print(f"figures written to {args.json}")
    return results


if __name__ == "__main__":
    main()
