"""demos/gpu_check.py: its plumbing, proven on the CPU (``--device cpu --quick``), so that the one
run on a GPU spends its minutes on the GPU. Part c's benchmark tool (demos/bench_lstm.py --json)
is stood in for by a fake that writes the agreed JSON; the report's formatting of that JSON is
checked on its own."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
from helpers import DEMOS, run_script

DATA = Path("/work/shared/data/tinyshakespeare.txt")

FAKE_BENCH = textwrap.dedent('''
    import argparse, json, sys
    p = argparse.ArgumentParser()
    p.add_argument("configs", nargs="*")
    for name in ("--device", "--contenders", "--json"):
        p.add_argument(name)
    for name in ("--rounds", "--steps", "--warmup"):
        p.add_argument(name, type=int)
    a = p.parse_args()
    if a.device == "fail":
        sys.exit("the benchmark broke")
    speed = {"tinygrad": 1000.0, "tinygrad-fused": 1500.0, "torch": 2000.0, "torch-composed": 900.0}
    out = {"configs": {c: {"contenders": {n: {"chars_per_sec": [v] * a.rounds, "median": v, "peak_bytes": 3 << 20,
                                              "first_loss": 4.1743} for n, v in speed.items()}} for c in a.configs},
           "machine": {"argv": " ".join(sys.argv[1:])}}
    json.dump(out, open(a.json, "w"))
''')


def gpu_check(tmp_path: Path, *args: str, timeout: float = 300):
    bench = tmp_path / "fake_bench.py"
    bench.write_text(FAKE_BENCH)
    out = tmp_path / "report.md"
    result = run_script([str(DEMOS / "gpu_check.py"), "--device", "cpu", "--quick", "--out", str(out),
                         "--bench-script", str(bench), *args], timeout=timeout)
    return result, out.read_text() if out.exists() else ""


def statuses(report: str) -> dict[str, str]:
    """part name -> status, from the report's summary table (the first table)."""
    summary = report.split("| part | status |", 1)[1].split("\n\n", 1)[0]
    return {m[1].split()[-1]: m[2] for m in re.finditer(r"^\| ([a-z ]+) \| (\w+) \|", summary, re.M)}


def small_corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    text = DATA.read_text(encoding="utf-8")[:100_000] if DATA.exists() else "to be or not to be, " * 5000
    path.write_text(text, encoding="utf-8")
    return path


def test_quick_cpu_run_writes_every_section_and_every_part_passes(tmp_path):
    result, report = gpu_check(tmp_path, "--data", str(small_corpus(tmp_path)),
                               "--pytest-args", "tests/test_cuda_kernels.py -k launch")
    assert result.returncode == 0, result.stdout + result.stderr
    assert statuses(report) == {"env": "ok", "tests": "ok", "kernels": "ok", "bench": "ok", "train": "ok"}
    for heading in ("## env", "## a tests", "## b kernels", "## c bench", "## d train"):
        assert heading in report
    assert "| tests/test_cuda_kernels.py | 2 | 0 | 0 | 0 |" in report  # the junit results, parsed
    # b: lstm and gru, float32 and float64; no GPU, so the twin ran, and equals itself exactly
    assert report.count("| NumPy twin | 0.0e+00 / 0.0e+00 |") == 4
    # c: the tool got the agreed arguments; its JSON became the table, the ratios and the targets
    assert "--rounds 1 --steps 2 --warmup 1 --contenders tinygrad,tinygrad-fused,torch,torch-composed" in report
    assert "| S | tinygrad-fused | 1,500 | 1,500 to 1,500 | 0.75x | 1.67x | 3.0 | 4.174300 |" in report
    # d: the two runs agree at every validation step, and the checkpoint sampled on the CPU
    rows = re.findall(r"^\| (\d+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$", report, re.M)
    assert len(rows) >= 6 and all(float(diff) <= 0.05 for *_, diff in rows)
    assert "checkpoint sampled on the CPU (exit status 0)" in report


def test_a_failing_part_records_its_error_and_the_run_goes_on(tmp_path):
    failing = tmp_path / "test_some.py"
    failing.write_text("def test_fine():\n    pass\n\ndef test_broken():\n    assert 1 + 1 == 3\n")
    result, report = gpu_check(tmp_path, "--parts", "tests,bench,train", "--data", str(tmp_path / "missing.txt"),
                               "--pytest-args", str(failing))
    assert result.returncode == 1
    assert statuses(report) == {"tests": "failed", "bench": "ok", "train": "error"}
    # the test's name is pytest's, relative to its rootdir: "test_some.py" or "<tmp folder>/test_some.py"
    assert re.search(r"^\| (\S+/)?test_some\.py::test_broken \| assert \(1 \+ 1\) == 3 \|$", report, re.M), report
    assert "no data file" in report


def test_a_broken_benchmark_is_reported_with_its_output(tmp_path):
    bench = tmp_path / "bench.py"
    bench.write_text("import sys\nprint('about to fail')\nsys.exit(3)\n")
    out = tmp_path / "report.md"
    result = run_script([str(DEMOS / "gpu_check.py"), "--device", "cpu", "--quick", "--parts", "bench",
                         "--out", str(out), "--bench-script", str(bench)], timeout=120)
    report = out.read_text()
    assert result.returncode == 1 and statuses(report) == {"bench": "error"}
    assert "exit status 3" in report and "about to fail" in report


def test_a_part_past_its_budget_is_stopped_and_the_report_still_written(tmp_path):
    result, report = gpu_check(tmp_path, "--parts", "env,kernels", "--budget-scale", "0.002")
    assert result.returncode == 1
    assert statuses(report) == {"env": "timeout", "kernels": "timeout"}
    assert "ran out of its" in report


@pytest.fixture(scope="module")
def parts():
    import sys

    sys.path.insert(0, str(DEMOS))
    try:
        import gpu_parts

        yield gpu_parts
    finally:
        sys.path.remove(str(DEMOS))


def bench_json(speeds: dict[str, dict[str, float]]) -> dict:
    return {"configs": {cfg: {"contenders": {c: {"chars_per_sec": [v * 0.9, v, v * 1.2], "median": v,
                                                 "peak_bytes": 5 << 20, "first_loss": 4.17 + (c == "torch") * 1e-6}
                                             for c, v in by.items()}} for cfg, by in speeds.items()},
            "machine": {"gpu": "NVIDIA H200"}}


def test_bench_report_gives_ratios_targets_and_loss_agreement(parts):
    data = bench_json({"L": {"tinygrad": 4000, "tinygrad-fused": 6000, "torch": 10000, "torch-composed": 5000},
                       "S": {"tinygrad": 800, "tinygrad-fused": 900, "torch": 3000, "torch-composed": 1000}})
    md, summary, met = parts.format_bench(json.loads(json.dumps(data)))
    assert md.index("| S | tinygrad |") < md.index("| L | tinygrad |")  # S, M, L order
    assert "| L | tinygrad-fused | 6,000 | 5,400 to 7,200 | 0.60x | 1.20x | 5.0 | 4.170000 |" in md
    assert "- L: tinygrad-fused at least 0.5x cuDNN: 0.60x met" in md
    assert "- S: tinygrad-fused above the composed PyTorch loop: 0.90x NOT met" in md
    assert "L: 2.4e-07" in md and "Machine: gpu NVIDIA H200" in md
    assert not met and summary.endswith("targets NOT all met")
    data["configs"]["S"]["contenders"]["tinygrad"]["median"] = 1100
    assert parts.format_bench(data)[2]  # now composed tinygrad_rnn beats the PyTorch loop at S too


def test_bench_report_of_nothing_says_so(parts):
    md, summary, met = parts.format_bench({"configs": {}, "machine": {}})
    assert md.startswith("No results") and summary == "no ratios" and not met
