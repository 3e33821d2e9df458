"""The demo scripts run and do what they say (loss falls)."""

from __future__ import annotations

from helpers import DEMOS, load_demo, run_script


def test_fit_sine_demo_loss_falls_tenfold(capsys):
    history = load_demo("fit_sine").main(steps=300)
    assert history[-1] < history[0] / 10
    assert "mse" in capsys.readouterr().out


def test_char_lstm_demo_trains_and_samples(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("def f(x):\n    return x + 1\n" * 200, encoding="utf-8")
    args = ["--data", str(text), "--steps", "60", "--hidden", "32", "--batch", "8", "--seq", "16", "--lr", "1e-2"]
    result = run_script([str(DEMOS / "char_lstm.py"), *args], timeout=300)
    assert result.returncode == 0, result.stderr
    losses = [float(line.split("loss ")[1].split()[0]) for line in result.stdout.splitlines() if "loss " in line]
    assert losses[-1] < losses[0] - 1.0


def test_bench_core_runs_every_workload_and_prints_ratios():
    result = run_script([str(DEMOS / "bench_core.py"), "--repeats", "1", "--processes", "2"], timeout=600)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for workload in ("chain of 2000 tiny ops", "matmul 64x256 @ 256x1024", "tanh over 64x1024"):
        assert workload in out
    assert out.count("tinygrad_rnn / raw NumPy = ") == 3 and "median over 2 processes" in out


def test_profile_step_splits_a_step_by_op_and_engine():
    result = run_script([str(DEMOS / "profile_step.py"), "S", "--steps", "1", "--no-replay"], timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("config S (lstm):")
    shares = [float(line.rsplit(None, 1)[-1].rstrip("%")) for line in lines[1:]]
    assert any("forward  Addmm" in line for line in lines) and "the rest" in lines[-1]
    assert abs(sum(shares) - 100) < 1.0  # the parts add up to the step


def test_profile_step_splits_the_replayed_step_by_kind():
    result = run_script([str(DEMOS / "profile_step.py"), "S", "--steps", "1", "--detail"], timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("config S (lstm, replayed):")
    parts = lines[1:lines.index("by instruction label:")]
    assert any("matrix products (GEMM)" in line for line in parts)
    assert any("optimizer and gradient clipping" in line for line in parts)
    assert abs(sum(float(line.rsplit(None, 1)[-1].rstrip("%")) for line in parts) - 100) < 1.0
    assert any("Addmm matmul" in line for line in lines)
