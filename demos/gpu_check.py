"""Check the GPU path end to end and write one Markdown report (issue 12, point 2).

Run (on a machine with an NVIDIA GPU and CuPy; about 8 minutes at most on an H200):

    PYTHONPATH=. python demos/gpu_check.py --data tinyshakespeare.txt --out gpu_report.md

Parts, each in its own process with its own time budget, each writing its section even when
another fails or runs out of time (a failed part records its error and the run goes on):

  env      the machine: GPU, driver, CUDA, Python and library versions
  a tests  the test suite's cuda cases (``pytest -k cuda``) on CuPy, failures listed
  b kernels  the fused LSTM/GRU CUDA kernels against their NumPy twins (run on the GPU)
           and the composed cells (GPU, and float64 on the CPU): values and gradients
  c bench  training throughput and peak GPU memory on S, M, L: tinygrad_rnn composed and
           fused against PyTorch nn.LSTM (cuDNN) and a PyTorch LSTM composed from nn.Linear,
           through ``demos/bench_lstm.py --json`` (each contender in its own process)
  d train  ``tinygrad-rnn train --device cuda`` for 300 steps against the same run on the
           CPU (validation losses at the same steps within 0.05 nats), and the GPU's
           checkpoint sampled on the CPU

``--device cpu --quick`` runs every part small on the CPU (how the tests prove the plumbing).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpu_parts  # noqa: E402  (a sibling module: the parts themselves)

ROOT = Path(__file__).resolve().parent.parent
DATA = "/work/shared/data/tinyshakespeare.txt"
# Seconds per part on an H200. Each part plans to end inside its budget and is stopped at budget +
# GRACE: even then the whole run takes 430 + 5 * 10 = 480 s, the 8 minutes it may take. Measured on
# the first run (2026-12-04): env 9 s, tests 50, kernels 2, train 72; the bench needed about 155 s
# for L alone at 3 rounds (each contender a fresh process that starts CUDA), so it runs 2 rounds.
BUDGETS = {"env": 15, "tests": 75, "kernels": 20, "bench": 230, "train": 90}
GRACE = 10


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--out", default="gpu_report.md", help="the Markdown report [gpu_report.md]")
    p.add_argument("--data", default=DATA, help="text to train on in part d [tiny-shakespeare]")
    p.add_argument("--parts", default=",".join(BUDGETS), help="which parts, comma-separated [all]")
    p.add_argument("--quick", action="store_true", help="tiny sizes and steps (a plumbing check, on the CPU)")
    p.add_argument("--budget-scale", type=float, default=1.0, help="multiply every part's budget")
    p.add_argument("--work", help="folder for logs, runs and JSON [next to --out]")
    p.add_argument("--pytest-args", default="-k cuda tests", help="what part a selects [-k cuda tests]")
    p.add_argument("--bench-script", default=str(ROOT / "demos" / "bench_lstm.py"))
    p.add_argument("--bench-steps", type=int, default=10, help="timed steps per round in part c [10]")
    p.add_argument("--train-steps", type=int, default=300, help="training steps in part d [300]")
    p.add_argument("--run-part", help=argparse.SUPPRESS)  # internal: run one part in this process
    p.add_argument("--budget", type=float, help=argparse.SUPPRESS)
    p.add_argument("--section", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.work = Path(args.work or Path(args.out).resolve().parent / (Path(args.out).stem + "_work"))
    unknown = set(args.parts.split(",")) - set(BUDGETS)
    if unknown:
        p.error(f"--parts: unknown part(s) {', '.join(sorted(unknown))}; choose from {', '.join(BUDGETS)}")
    return args


# ---------------------------------------------------------------- running one part in a child process

def run_part(name: str, args: argparse.Namespace, budget: float) -> dict[str, Any]:
    """The part in a fresh process (a GPU error cannot poison the others), stopped at its budget;
    returns its section: {"status", "summary", "markdown", "seconds"}."""
    section = args.work / f"{name}.json"
    section.unlink(missing_ok=True)
    cmd = [sys.executable, os.path.abspath(__file__), *args.argv, "--work", str(args.work),
           "--run-part", name, "--budget", str(budget), "--section", str(section)]
    log = args.work / f"{name}.log"
    t0 = time.perf_counter()
    rc = gpu_parts.run_logged(cmd, budget + GRACE * min(1.0, args.budget_scale), log, interrupt_first=False)
    seconds = time.perf_counter() - t0
    if section.exists():
        out = json.loads(section.read_text())
    else:
        why = f"ran out of its {budget:.0f} s budget and was stopped" if rc is None else f"exited with status {rc}"
        out = {"status": "timeout" if rc is None else "error", "summary": why,
               "markdown": f"The part {why} before writing its section. The end of its output:\n\n"
                           + gpu_parts.code_block(gpu_parts.tail(log, 40))}
    out["seconds"] = seconds
    return out


def child(args: argparse.Namespace) -> int:
    """Inside the part's process: run it, write its section, whatever happens."""
    t0 = time.perf_counter()
    try:
        result = gpu_parts.PARTS[args.run_part](args, args.budget)
    except Exception as exc:  # the section says what broke; the run goes on with the next part
        import traceback

        result = {"status": "error", "summary": f"{type(exc).__name__}: {str(exc)[:200]}",
                  "markdown": "The part raised:\n\n" + gpu_parts.code_block(traceback.format_exc())}
    result["inner_seconds"] = time.perf_counter() - t0
    Path(args.section).write_text(json.dumps(result))
    return 0


# ---------------------------------------------------------------- the report

def report(args: argparse.Namespace, sections: dict[str, dict], started: str, total: float) -> str:
    letters = {"env": "", "tests": "a", "kernels": "b", "bench": "c", "train": "d"}
    lines = [f"# GPU check report ({args.device}{', quick' if args.quick else ''})", "",
             f"Started {started}, {total:.0f} s in all. Command: "
             f"`{shlex.join(['python', 'demos/gpu_check.py', *args.argv])}`", "",
             "| part | status | seconds (budget) | summary |", "|---|---|---|---|"]
    for name, s in sections.items():
        label = f"{letters[name]} {name}".strip()
        lines.append(f"| {label} | {s['status']} | {s['seconds']:.0f} ({s['budget']:.0f}) | "
                     f"{s['summary'].replace('|', '/')} |")
    for name, s in sections.items():
        lines += ["", f"## {letters[name]} {name}".replace("#  ", "# "), "", s["markdown"].rstrip()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.run_part:
        return child(args)
    args.work.mkdir(parents=True, exist_ok=True)
    started, t0 = time.strftime("%Y-%m-%d %H:%M:%S"), time.perf_counter()
    sections: dict[str, dict] = {}
    for name in [n for n in BUDGETS if n in args.parts.split(",")]:
        budget = BUDGETS[name] * args.budget_scale
        print(f"[gpu_check] part {name}: budget {budget:.0f} s", flush=True)
        sections[name] = run_part(name, args, budget) | {"budget": budget}
        print(f"[gpu_check] part {name}: {sections[name]['status']} in {sections[name]['seconds']:.0f} s: "
              f"{sections[name]['summary']}", flush=True)
        Path(args.out).write_text(report(args, sections, started, time.perf_counter() - t0))  # kept current
    print(f"[gpu_check] report: {args.out}", flush=True)
    return 0 if all(s["status"] == "ok" for s in sections.values()) else 1


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())
