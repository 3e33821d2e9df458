"""The demo scripts run and do what they say (loss falls; each application beats its baseline
after a short run and ends with its JSON line)."""

from __future__ import annotations

import json
import math

import pytest
from helpers import DEMOS, load_demo, run_script

RESULT_KEYS = {"metric", "value", "baseline", "baseline_value"}


def final_json(stdout: str) -> dict:
    """The demo's last line, parsed: one JSON object."""
    return json.loads(stdout.strip().splitlines()[-1])


def run_application(name: str, *args: str) -> dict:
    """Run demos/<name>.py with a small budget; check its JSON line's keys and types."""
    result = run_script([str(DEMOS / f"{name}.py"), *args], timeout=300)
    assert result.returncode == 0, result.stderr
    out = final_json(result.stdout)
    assert set(out) == RESULT_KEYS
    assert isinstance(out["metric"], str) and isinstance(out["baseline"], str)
    assert math.isfinite(out["value"]) and math.isfinite(out["baseline_value"])
    return out


def test_fit_sine_demo_loss_falls_tenfold(capsys):
    history = load_demo("fit_sine").main(steps=300)
    assert history[-1] < history[0] / 10
    assert "mse" in capsys.readouterr().out


def test_char_lstm_demo_trains_samples_and_beats_the_unigram_baseline(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("def f(x):\n    return x + 1\n" * 200, encoding="utf-8")
    args = ["--data", str(text), "--steps", "60", "--hidden", "32", "--batch", "8", "--seq", "16", "--lr", "1e-2",
            "--seed", "1"]
    result = run_script([str(DEMOS / "char_lstm.py"), *args], timeout=300)
    assert result.returncode == 0, result.stderr
    losses = [float(line.split("loss ")[1].split()[0]) for line in result.stdout.splitlines() if "loss " in line]
    assert losses[-1] < losses[0] - 1.0
    out = final_json(result.stdout)
    assert set(out) == RESULT_KEYS and out["metric"] == "bits_per_char"
    assert out["value"] < out["baseline_value"] / 3  # a repetitive text: context predicts it


def test_classify_demo_learns_balanced_brackets_beyond_the_majority_class(tmp_path):
    plot = tmp_path / "classify.png"
    out = run_application("classify", "--steps", "300", "--test-size", "300", "--plot", str(plot))
    assert out["metric"] == "accuracy" and 0.4 < out["baseline_value"] < 0.6
    assert out["value"] > 0.85
    assert plot.stat().st_size > 0


def test_regress_demo_beats_half_the_last_value_baseline_after_a_short_run():
    out = run_application("regress", "--steps", "40", "--length", "40")
    assert out["metric"] == "mse"
    assert out["value"] < out["baseline_value"] / 2


def test_seq2seq_demo_reverses_strings_far_better_than_copying():
    out = run_application("seq2seq", "--steps", "200", "--hidden", "64", "--test-size", "200")
    assert out["metric"] == "exact_match" and out["baseline_value"] < 0.1
    assert out["value"] > out["baseline_value"] + 0.3


def test_gradient_flow_demo_shows_the_rnn_gradient_vanish_and_writes_its_figure(tmp_path):
    plot = tmp_path / "flow.png"
    result = run_script([str(DEMOS / "gradient_flow.py"), "--length", "30", "--hidden", "16", "--out", str(plot)],
                        timeout=300)
    assert result.returncode == 0, result.stderr
    out = final_json(result.stdout)
    assert set(out) == {"distance", "rnn", "lstm", "gru"}
    assert out["distance"] == [0, 1, 5, 10, 20]  # the listed distances that fit in 30 steps
    assert all(len(out[k]) == 5 and all(v > 0 for v in out[k]) for k in ("rnn", "lstm", "gru"))
    assert out["rnn"][-1] < 1e-4 * out["rnn"][1]  # vanished over 20 steps
    assert out["lstm"][-1] > 1e-2 * out["lstm"][1] and out["gru"][-1] > 1e-2 * out["gru"][1]  # gates open: kept
    assert "clip_grad_norm_: total gradient norm" in result.stdout
    assert plot.stat().st_size > 0


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


def test_bench_threads_runs_and_tabulates():
    r = run_script([str(DEMOS / "bench_threads.py"), "S", "--busy", "0", "1", "--policies", "1", "--rounds", "1",
                    "--steps", "1", "--no-torch"], timeout=300)
    assert r.returncode == 0, r.stderr
    rows = [line for line in r.stdout.splitlines() if line.startswith("| S | 1 |")]
    assert len(rows) == 1 and "x)" in rows[0]  # the busy column carries its ratio to the quiet one


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


def test_time_to_quality_runs_both_trainers_on_one_pipeline(tmp_path):
    pytest.importorskip("torch")  # the comparison's other side

    text = tmp_path / "t.txt"
    text.write_text(("The quick brown fox jumps over the lazy dog.\n" * 20 + "Pack my box with jugs.\n" * 20) * 8,
                    encoding="utf-8")
    out = tmp_path / "ttq.json"
    args = ["--data", str(text), "--steps", "6", "--eval-every", "3", "--seeds", "0,1", "--hidden-size", "12",
            "--batch-size", "4", "--seq-len", "12", "--json", str(out), "--plot", str(tmp_path / "ttq.png")]
    result = run_script([str(DEMOS / "time_to_quality.py"), *args], timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    tg_runs, torch_runs = report["runs"]["tinygrad"], report["runs"]["torch:streams"]
    for seed in ("0", "1"):  # same weights, same batches: the first step's loss is the same
        assert abs(tg_runs[seed]["first_train_loss"] - torch_runs[seed]["first_train_loss"]) < 1e-4
        assert [p["step"] for p in tg_runs[seed]["curve"]] == [3, 6]
    points = report["summary"]["tinygrad"]["points"]
    assert [p["step"] for p in points] == [3, 6] and all(p["std"] > 0 for p in points)
    assert report["agreement"]["agree"] and "time to 1.6 nats" in result.stdout
    assert (tmp_path / "ttq.png").stat().st_size > 0


def test_time_to_quality_without_pytorch_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    import importlib.util

    text = tmp_path / "t.txt"
    text.write_text("abc\n" * 100, encoding="utf-8")
    demo = load_demo("time_to_quality")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    with pytest.raises(SystemExit) as exit_:
        demo.main(["--data", str(text), "--steps", "2", "--json", str(tmp_path / "t.json")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "PyTorch is not installed" in err and "--impls tinygrad" in err and "Traceback" not in err
    assert not (tmp_path / "t.json").exists()
