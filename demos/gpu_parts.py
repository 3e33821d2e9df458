"""The parts of ``demos/gpu_check.py``: each takes the parsed arguments and its time budget in
seconds and returns its report section ``{"status", "summary", "markdown"}``; status is "ok",
"failed" (a check failed) or "error". Commands they start run from the checkout, with it first
on PYTHONPATH, their output in a log under ``--work``.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CONTENDERS = ["tinygrad", "tinygrad-fused", "torch", "torch-composed"]
TOL = {"float32": {"rtol": 2e-5, "atol": 1e-6}, "float64": {"rtol": 1e-10, "atol": 1e-12}}  # as tests/conftest.py
VAL_TOLERANCE = 0.05  # nats: GPU and CPU validation losses at the same step


# ---------------------------------------------------------------- processes and text

def env(threads: int | None = None) -> dict[str, str]:
    rest = os.environ.get("PYTHONPATH")
    out = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *([rest] if rest else [])]), "PYTHONUNBUFFERED": "1"}
    if threads:
        out |= {v: str(threads) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    return out


def start(cmd: list[str], log: Path, threads: int | None = None) -> subprocess.Popen:
    with open(log, "w") as fh:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT, env=env(threads),
                                start_new_session=True)


def finish(p: subprocess.Popen, timeout: float, interrupt_first: bool = True) -> int | None:
    """Wait up to ``timeout`` s; then interrupt (Ctrl-C: pytest still writes its results) and kill.
    Returns the exit status, or None when it had to be stopped."""
    try:
        return p.wait(max(timeout, 0.1))
    except subprocess.TimeoutExpired:
        pass
    if interrupt_first:
        os.killpg(p.pid, signal.SIGINT)
        try:
            p.wait(8)
            return None
        except subprocess.TimeoutExpired:
            pass
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    return None


def run_logged(cmd: list[str], timeout: float, log: Path, interrupt_first: bool = True,
               threads: int | None = None) -> int | None:
    return finish(start(cmd, log, threads), timeout, interrupt_first)


def tail(path: Path, n: int) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:]) if path.exists() else "(no output)"


def code_block(text: str) -> str:
    return "```\n" + text.replace("```", "'''").rstrip() + "\n```\n"


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "/") for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def section(status: str, summary: str, markdown: str) -> dict[str, Any]:
    return {"status": status, "summary": summary, "markdown": markdown}


# ---------------------------------------------------------------- env

def part_env(args: Any, budget: float) -> dict[str, Any]:
    """Versions and the GPU, as the other parts will see them."""
    import numpy as np

    import tinygrad_rnn as tg

    rows = [["python", sys.version.split()[0]], ["platform", platform.platform()], ["numpy", np.__version__],
            ["tinygrad_rnn cuda_available()", tg.cuda_available()]]
    for name, probe in (("cupy", _cupy_info), ("torch", _torch_info)):
        try:
            rows += probe()
        except Exception as exc:  # not installed, or no driver: say so
            rows.append([name, f"unavailable ({type(exc).__name__}: {str(exc)[:120]})"])
    for cmd in (["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.sm,temperature.gpu",
                 "--format=csv,noheader"], ["nvcc", "--version"], ["git", "rev-parse", "--short", "HEAD"],
                ["git", "status", "--porcelain", "--untracked-files=no"]):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, cwd=ROOT).stdout.strip()
            if cmd[1] == "status":
                out = f"{len(out.splitlines())} files changed since that commit" if out else "clean"
            rows.append([" ".join(cmd[:2]), (out.splitlines() or ["-"])[-1][:150]])
        except (OSError, subprocess.TimeoutExpired) as exc:
            rows.append([cmd[0], f"unavailable ({type(exc).__name__})"])
    ok = args.device == "cpu" or tg.cuda_available()
    summary = "GPU usable" if tg.cuda_available() else "no usable GPU" + ("" if ok else ": the cuda parts will fail")
    return section("ok" if ok else "failed", summary, table(["what", "value"], rows))


def _cupy_info() -> list[list[Any]]:
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(0)
    rt, drv = cupy.cuda.runtime.runtimeGetVersion(), cupy.cuda.runtime.driverGetVersion()
    return [["cupy", cupy.__version__], ["CUDA runtime / driver", f"{rt // 1000}.{rt % 1000 // 10} / "
                                                                 f"{drv // 1000}.{drv % 1000 // 10}"],
            ["GPU", f"{props['name'].decode()}, {props['totalGlobalMem'] / 2**30:.0f} GiB, "
                    f"{props['multiProcessorCount']} SMs, compute capability {props['major']}.{props['minor']}"]]


def _torch_info() -> list[list[Any]]:
    import torch

    cuda = torch.cuda.is_available()
    return [["torch", torch.__version__], ["torch CUDA / cuDNN", f"{torch.version.cuda} / "
                                                                 f"{torch.backends.cudnn.version() if cuda else '-'}"]]


# ---------------------------------------------------------------- a: the test suite on CuPy

def part_tests(args: Any, budget: float) -> dict[str, Any]:
    junit, log = args.work / "junit.xml", args.work / "pytest.log"
    junit.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "pytest", "-o", "addopts=", "-m", "not long", "-p", "no:cacheprovider", "-q",
           "-rfE", f"--junitxml={junit}", *shlex.split(args.pytest_args)]
    if not args.quick and _has("xdist"):
        cmd += ["-n", "4"]  # independent cases; a worker lost to a GPU fault is replaced, not the run
    if not args.quick and _has("pytest_timeout"):
        cmd += ["--timeout", "90"]  # a hung case fails alone instead of taking the part's whole budget
    t0 = time.perf_counter()
    rc = run_logged(cmd, budget - 12, log)
    took = time.perf_counter() - t0
    if not junit.exists():
        return section("error", f"pytest wrote no results (exit {rc})", "Command: `" + shlex.join(cmd) + "`\n\n"
                       + code_block(tail(log, 40)))
    cases = _junit_cases(junit)
    count = {k: sum(c["outcome"] == k for c in cases) for k in ("passed", "failed", "error", "skipped")}
    skipped_cuda = [c for c in cases if c["outcome"] == "skipped" and "cuda" in c["name"].partition("[")[2]]
    bad = [c for c in cases if c["outcome"] in ("failed", "error")]
    summary = (f"{count['passed']} passed, {count['failed']} failed, {count['error']} errors, {count['skipped']} "
               f"skipped ({len(skipped_cuda)} of them cuda cases) in {took:.0f} s"
               + ("; STOPPED at the time budget" if rc is None else ""))
    files: dict[str, dict[str, int]] = {}
    for c in cases:
        files.setdefault(c["file"], {"passed": 0, "failed": 0, "error": 0, "skipped": 0})[c["outcome"]] += 1
    md = f"Command: `{shlex.join(cmd)}` (exit status {rc}).\n\n"
    md += table(["file", "passed", "failed", "errors", "skipped"],
                [[f, n["passed"], n["failed"], n["error"], n["skipped"]] for f, n in sorted(files.items())])
    if bad:
        md += "\nFailures and errors (first line of each):\n\n"
        md += table(["test", "message"], [[c["file"] + "::" + c["name"], c["message"][:300]] for c in bad[:60]])
    if skipped_cuda and args.device == "cuda":
        md += f"\n{len(skipped_cuda)} cuda cases were skipped: {', '.join(c['name'] for c in skipped_cuda[:10])}\n"
    ok = rc is not None and not bad and not (args.device == "cuda" and skipped_cuda)
    return section("ok" if ok else ("timeout" if rc is None else "failed"), summary, md)


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _junit_cases(path: Path) -> list[dict[str, str]]:
    out = []
    for tc in ET.parse(path).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for kind, name in (("failure", "failed"), ("error", "error"), ("skipped", "skipped")):
            el = tc.find(kind)
            if el is not None:
                outcome, message = name, (el.get("message") or el.text or "").strip().splitlines()[0:1]
                message = message[0] if message else ""
                break
        out.append({"file": tc.get("classname", "").replace(".", "/") + ".py", "name": tc.get("name", ""),
                    "outcome": outcome, "message": message})
    return out


# ---------------------------------------------------------------- b: the fused kernels

def part_kernels(args: Any, budget: float) -> dict[str, Any]:
    """Each fused op on the device (its CUDA kernel on cuda) against its NumPy twin on the device,
    the composed cell on the device and the composed cell in float64 on the CPU."""
    import gpu_kernels

    return gpu_kernels.check(args.device, args.quick, budget)


# ---------------------------------------------------------------- c: throughput against PyTorch

def part_bench(args: Any, budget: float) -> dict[str, Any]:
    deadline = time.perf_counter() + budget - 5
    # L first: the slowest, and the one the cuDNN target is set on, runs while the most time is left
    configs, steps = (["S"], 2) if args.quick else (["L", "M", "S"], args.bench_steps)
    merged: dict[str, Any] = {"configs": {}, "machine": {}}
    notes = []
    for cfg in configs:  # one process tree per config: a config that fails or runs late loses only itself
        out, log = args.work / f"bench_{cfg}.json", args.work / f"bench_{cfg}.log"
        out.unlink(missing_ok=True)
        cmd = [sys.executable, args.bench_script, cfg, "--device", args.device, "--rounds", "1" if args.quick else "2",
               "--steps", str(steps), "--warmup", str(max(1, steps // 3)), "--contenders", ",".join(CONTENDERS),
               "--json", str(out)]
        rc = run_logged(cmd, deadline - time.perf_counter(), log, interrupt_first=False)
        if rc == 0 and out.exists():
            data = json.loads(out.read_text())
            merged["configs"] |= data.get("configs", {})
            merged["machine"] = merged["machine"] or data.get("machine", {})
        else:
            why = "stopped at the time budget" if rc is None else f"exit status {rc}"
            notes.append(f"config {cfg}: {why}. Command: `{shlex.join(cmd)}`\n\n" + code_block(tail(log, 25)))
    (args.work / "bench.json").write_text(json.dumps(merged, indent=1))
    md, summary, targets_met = format_bench(merged)
    if notes:
        md += "\n" + "\n".join(notes)
    ran = [c for c in configs if c in merged["configs"]]
    status = "ok" if len(ran) == len(configs) else ("error" if not ran else "failed")
    return section(status, summary if ran else "no config ran", md)


def format_bench(data: dict[str, Any]) -> tuple[str, str, bool]:
    """The Markdown tables of a ``bench_lstm.py --json`` result, its one-line summary, and whether
    the issue's targets are met: at least 0.5x cuDNN at L, and above the composed PyTorch loop on
    every configuration (tinygrad_rnn's better variant, composed or fused)."""
    rows, checks, spreads = [], [], []
    for name, cfg in sorted(data.get("configs", {}).items(), key=lambda kv: ("SML".find(kv[0]), kv[0])):
        cont = cfg.get("contenders", {})
        med = {c: v.get("median") for c, v in cont.items()}
        ours = max((c for c in ("tinygrad", "tinygrad-fused") if med.get(c)), key=lambda c: med[c], default=None)
        for c, v in cont.items():
            speeds = v.get("chars_per_sec") or []
            rows.append([name, c, f"{med[c]:,.0f}" if med[c] else "-",
                         f"{min(speeds):,.0f} to {max(speeds):,.0f}" if speeds else "-", _ratio(med, c, "torch"),
                         _ratio(med, c, "torch-composed"),
                         f"{v['peak_bytes'] / 2**20:,.1f}" if v.get("peak_bytes") else "-",
                         f"{v['first_loss']:.6f}" if v.get("first_loss") is not None else "-"])
        losses = [v["first_loss"] for v in cont.values() if v.get("first_loss") is not None]
        if losses:
            spreads.append(f"{name}: {(max(losses) - min(losses)) / abs(losses[0]):.1e}")
        if ours and med.get("torch-composed"):
            checks.append((f"{name}: {ours} above the composed PyTorch loop", med[ours] > med["torch-composed"],
                           f"{med[ours] / med['torch-composed']:.2f}x"))
        if name == "L" and ours and med.get("torch"):
            checks.append((f"L: {ours} at least 0.5x cuDNN", med[ours] >= 0.5 * med["torch"],
                           f"{med[ours] / med['torch']:.2f}x"))
    md = table(["config", "contender", "chars/s (median)", "rounds", "vs cuDNN", "vs torch composed",
                "peak MiB", "first loss"], rows) if rows else "No results.\n"
    if spreads:
        md += "\nFirst-step losses, relative spread across contenders (same weights, same batch): " + \
              "; ".join(spreads) + ".\n"
    if checks:
        md += "\nTargets:\n\n" + "\n".join(f"- {what}: {value} {'met' if ok else 'NOT met'}"
                                         for what, ok, value in checks) + "\n"
    if data.get("machine"):
        md += "\nMachine: " + ", ".join(f"{k} {v}" for k, v in data["machine"].items()) + "\n"
    met = bool(checks) and all(ok for _, ok, _ in checks)
    summary = "; ".join(f"{what.split(':')[0]} {value}" for what, _, value in checks) or "no ratios"
    return md, summary + ("; targets met" if met else "; targets NOT all met" if checks else ""), met


def _ratio(med: dict[str, Any], c: str, ref: str) -> str:
    return f"{med[c] / med[ref]:.2f}x" if med.get(ref) and med.get(c) else "-"


# ---------------------------------------------------------------- d: a training run, GPU against CPU

def part_train(args: Any, budget: float) -> dict[str, Any]:
    if not Path(args.data).is_file():
        return section("error", f"no data file {args.data}", f"`--data {args.data}`: no such file.\n")
    deadline = time.perf_counter() + budget - 8
    steps = 20 if args.quick else args.train_steps
    model = ["--hidden-size", "16", "--num-layers", "1", "--seq-len", "16", "--batch-size", "4"] if args.quick else []
    every = max(1, steps // 6)
    minutes = max(budget - 35, 5) / 60  # each run stops training in time to validate and save
    runs = {}
    for name, dev in (("device", args.device), ("cpu", "cpu")):  # at once: they are independent
        folder = args.work / f"train_{name}"
        cmd = [sys.executable, "-m", "tinygrad_rnn", "train", "--data", args.data, "--device", dev, "--seed", "0",
               "--max-steps", str(steps), "--eval-every", str(every), "--max-minutes", f"{minutes:.2f}",
               "--out", str(folder), "--quiet", *model]
        # the CPU run leaves two cores to the GPU run's host thread
        threads = max(1, (os.cpu_count() or 2) - 2) if name == "cpu" and args.device != "cpu" else None
        runs[name] = (folder, cmd, start(cmd, args.work / f"train_{name}.log", threads))
    status = {n: finish(p, deadline - time.perf_counter()) for n, (_, _, p) in runs.items()}
    val = {n: _val_losses(f / "metrics.jsonl") for n, (f, _, _) in runs.items()}
    last = {n: _last_step(f / "metrics.jsonl") for n, (f, _, _) in runs.items()}
    common = sorted(set(val["device"]) & set(val["cpu"]))
    diffs = [[s, f"{val['device'][s]:.4f}", f"{val['cpu'][s]:.4f}", f"{abs(val['device'][s] - val['cpu'][s]):.4f}"]
             for s in common]
    agree = bool(common) and all(abs(val["device"][s] - val["cpu"][s]) <= VAL_TOLERANCE for s in common)
    md = "".join(f"- {n} run: exit status {status[n]}, reached step {last[n]} of {steps}; `{shlex.join(cmd)}`\n"
                 for n, (_, cmd, _) in runs.items())
    if last["cpu"] < steps:
        md += f"- the CPU run stopped at step {last['cpu']} (its time budget): compared at the steps both reached\n"
    md += "\n" + (table(["step", f"val loss {args.device}", "val loss cpu", "difference"], diffs) if diffs
                  else "No common validation step.\n")
    sample_log = args.work / "sample.log"
    rc = run_logged([sys.executable, "-m", "tinygrad_rnn", "sample", str(runs["device"][0]), "--device", "cpu",
                     "--length", "200", "--seed", "0"], max(deadline - time.perf_counter(), 20), sample_log)
    text = sample_log.read_text(errors="replace") if sample_log.exists() else ""
    sampled = rc == 0 and len(text.strip()) > 0
    md += f"\nThe {args.device} run's checkpoint sampled on the CPU (exit status {rc}):\n\n" + code_block(text[-1200:])
    for n in runs:
        if status[n] != 0:
            md += f"\nThe end of the {n} run's output:\n\n" + code_block(tail(args.work / f"train_{n}.log", 20))
    worst = max((abs(val["device"][s] - val["cpu"][s]) for s in common), default=float("nan"))
    summary = (f"{len(common)} common validation steps, largest difference {worst:.4f} nats "
               f"(tolerance {VAL_TOLERANCE}); CPU sample {'ok' if sampled else 'FAILED'}")
    return section("ok" if agree and sampled and all(v == 0 for v in status.values()) else "failed", summary, md)


def _rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _val_losses(path: Path) -> dict[int, float]:
    return {r["step"]: r["val_loss"] for r in _rows(path) if r.get("val_loss") is not None}


def _last_step(path: Path) -> int:
    rows = _rows(path)
    return rows[-1]["step"] if rows else 0


PARTS = {"env": part_env, "tests": part_tests, "kernels": part_kernels, "bench": part_bench, "train": part_train}
