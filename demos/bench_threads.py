"""Training speed on a busy machine: BLAS thread policies under 0, 1 and 2 other busy processes.

Run:  python demos/bench_threads.py [S M] [--busy 0 1 2] [--policies blas auto 1] [--rounds 2] [--steps 10]

Each cell of the table is the median over ``--rounds`` of ``tinygrad-rnn bench CONFIG --threads
POLICY``, each run in a fresh process while ``--busy`` other processes spin (pure Python loops,
one core each, started before and stopped after every load level). ``blas`` is the BLAS
library's own default (OpenBLAS: one thread per core), ``auto`` the command's default policy
(``tinygrad_rnn.threads.AutoThreads``), a number a fixed count. PyTorch runs beside them in a
process of its own with its own defaults (``demos/bench_lstm.py --contenders torch``), when it
is installed. The last column of each row is the ratio to the same policy on the quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def env() -> dict[str, str]:
    """This checkout first on the path, so the subprocesses run the same package."""
    rest = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *([rest] if rest else [])])}


def tinygrad_speed(config: str, policy: str, steps: int) -> float:
    """chars/s of ``tinygrad-rnn bench CONFIG --threads POLICY`` in a fresh process."""
    out = subprocess.run([sys.executable, "-m", "tinygrad_rnn", "bench", config, "--threads", policy,
                          "--steps", str(steps)], capture_output=True, text=True, env=env(), check=True).stdout
    row = [line for line in out.splitlines() if line.startswith(config)][-1]
    return float(row.split()[6].replace(",", ""))


def torch_speed(config: str, steps: int) -> float | None:
    """chars/s of PyTorch nn.LSTM with its own defaults in a fresh process (None without torch)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.json"
        r = subprocess.run([sys.executable, str(HERE / "bench_lstm.py"), config, "--contenders", "torch", "--rounds",
                            "1", "--steps", str(steps), "--json", str(path)], capture_output=True, text=True, env=env())
        if r.returncode != 0 or not path.exists():
            return None
        return json.loads(path.read_text())["configs"][config]["contenders"]["torch"]["median"]


class Busy:
    """``n`` processes spinning on one core each, for the length of a ``with`` block."""

    def __init__(self, n: int) -> None:
        self.n, self.procs = n, []

    def __enter__(self) -> Busy:
        self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(self.n)]
        time.sleep(0.5 if self.n else 0.0)  # let them get going
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            p.kill()
            p.wait()


def measure(configs: list[str], busy_levels: list[int], policies: list[str], rounds: int, steps: int,
            with_torch: bool) -> dict:
    """{busy: {config: {contender: [chars/s per round]}}}, rounds interleaved within each load level."""
    results: dict = {}
    for busy in busy_levels:
        results[busy] = {c: {p: [] for p in policies + (["PyTorch"] if with_torch else [])} for c in configs}
        with Busy(busy):
            for _ in range(rounds):
                for config in configs:
                    for policy in policies:
                        results[busy][config][policy].append(tinygrad_speed(config, policy, steps))
                    if with_torch:
                        speed = torch_speed(config, steps)
                        if speed is not None:
                            results[busy][config]["PyTorch"].append(speed)
        rounded = {c: {k: [round(v) for v in vs] for k, vs in d.items()} for c, d in results[busy].items()}
        print(f"busy {busy}: {json.dumps(rounded)}", flush=True)
    return results


def table(results: dict) -> str:
    busy_levels = list(results)
    configs = list(results[busy_levels[0]])
    lines = ["| config | threads | " + " | ".join(f"{b} busy" for b in busy_levels) + " |",
             "|---|---|" + "---|" * len(busy_levels)]
    for config in configs:
        for name in results[busy_levels[0]][config]:
            quiet = results[busy_levels[0]][config][name]
            cells = []
            for b in busy_levels:
                runs = results[b][config][name]
                if not runs:
                    cells.append("-")
                    continue
                med = statistics.median(runs)
                ratio = f" ({med / statistics.median(quiet):.2f}x)" if quiet and b != busy_levels[0] else ""
                cells.append(f"{med:,.0f}{ratio}")
            label = {"blas": "BLAS default", "auto": "auto (default)"}.get(name, name)
            lines.append(f"| {config} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("configs", nargs="*", default=["S", "M"])
    ap.add_argument("--busy", type=int, nargs="+", default=[0, 1, 2], help="numbers of busy processes [0 1 2]")
    ap.add_argument("--policies", nargs="+", default=["blas", "auto", "1"], help="--threads values [blas auto 1]")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--json", help="also write the raw figures here")
    args = ap.parse_args()
    if any(not re.fullmatch(r"[SML]", c) for c in args.configs):
        ap.error("configs are S, M or L")
    try:
        import torch  # noqa: F401
        with_torch = not args.no_torch
    except ImportError:
        with_torch = False
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the start", flush=True)
    results = measure(args.configs, args.busy, args.policies, args.rounds, args.steps, with_torch)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    print(f"\nchars/s, median of {args.rounds} rounds (ratio to the quiet machine)\n")
    print(table(results))


if __name__ == "__main__":
    main()
