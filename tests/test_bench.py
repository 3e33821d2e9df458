"""The training-step benchmark: sane figures, a static graph, the command, and equal work.

The NumPy LSTM written by hand (``demos/numpy_lstm.py``) is a contender of
``demos/bench_lstm.py``; it is only a fair one if it computes what tinygrad_rnn computes,
so its gradients and training steps are checked against tinygrad_rnn's in float64.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tinygrad_rnn.charlm.bench import BenchConfig, TrainStep, bench, synthetic_batches
from tinygrad_rnn.cli import main

from helpers import load_demo

TINY = {"hidden": 8, "layers": 2, "batch": 3, "seq_len": 5, "steps": 3, "warmup": 1}


numpy_lstm = load_demo("numpy_lstm")


@pytest.mark.parametrize("model", ["lstm", "gru", "rnn"])
def test_bench_reports_positive_figures_and_a_static_graph(model):
    r = bench(BenchConfig(model=model, **TINY))
    assert r.chars_per_sec > 0 and r.step_s > 0
    assert min(r.forward_s, r.backward_s, r.optimizer_s) > 0
    assert r.ops_per_step > 0 and r.ops_each_step == [r.ops_per_step] * TINY["steps"]  # same tape every step
    assert r.peak_mb > 0 and r.bytes_per_time_step == pytest.approx(r.peak_mb * 1e6 / TINY["seq_len"])
    assert all(abs(loss - math.log(65)) < 0.5 for loss in r.losses)  # random ids: about ln V


def test_bench_op_count_grows_linearly_with_the_sequence():
    ops = [bench(BenchConfig(**(TINY | {"seq_len": t, "steps": 1, "warmup": 0}))).ops_per_step for t in (4, 8, 12)]
    assert ops[2] - ops[1] == ops[1] - ops[0] > 0


def test_cli_bench_runs_a_tiny_config(capsys):
    assert main(["bench", "--hidden", "8", "--layers", "1", "--batch", "2", "--seq-len", "4",
                 "--steps", "2", "--warmup", "1", "--model", "gru"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "chars/s" in lines[1] and lines[2].split()[:2] == ["custom", "gru"]


@pytest.mark.parametrize("argv", [["bench", "XL"], ["bench", "--steps", "0"], ["bench", "--hidden", "0"]])
def test_cli_bench_rejects_bad_input_with_one_line(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bench" in err


def test_numpy_lstm_gradients_match_tinygrad_float64():
    for name, (ours, theirs) in numpy_lstm.compare_with_tinygrad(T=5, B=3, H=6, layers=2, V=11, seed=1).items():
        np.testing.assert_allclose(ours, theirs, rtol=1e-11, atol=1e-12, err_msg=name)


def test_numpy_lstm_training_steps_match_tinygrad_float64():
    # Two steps: the second starts from the carried state, after clipping and an Adam update.
    cfg = BenchConfig(hidden=6, layers=2, batch=3, seq_len=4, dtype="float64")
    step = TrainStep(cfg)
    ours = numpy_lstm.NumpyCharLSTM(step.model.state_dict())
    data = synthetic_batches(cfg)
    for _ in range(2):
        x, y = next(data)
        assert ours.step(x, y.reshape(x.shape)) == pytest.approx(step(x, y), rel=1e-10)
    theirs = step.model.state_dict()
    for name, value in ours.state_dict().items():
        np.testing.assert_allclose(value, theirs[name], rtol=1e-11, atol=1e-12, err_msg=name)


def test_bench_both_reports_the_composed_and_the_fused_lstm(capsys):
    from tinygrad_rnn.cli import main

    argv = ["bench", "--hidden", "8", "--layers", "1", "--batch", "2", "--seq-len", "3", "--steps", "1",
            "--warmup", "0", "--both"]
    assert main(argv) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("custom")]
    assert [row.split()[1] for row in rows] == ["lstm", "lstm+f"]
    assert int(rows[1].split()[11]) < int(rows[0].split()[11])  # fewer ops recorded per step


# ---------------------------------------------------------------- the fair tool and the GEMM floor

from helpers import DEMOS, run_script  # noqa: E402

bench_lstm = load_demo("bench_lstm")


def test_bench_lstm_runs_every_contender_in_a_fresh_process_and_writes_the_figures(tmp_path):
    out = tmp_path / "figures.json"
    contenders = "tinygrad,numpy,floor" + (",torch" if _has_torch() else "")
    result = run_script([str(DEMOS / "bench_lstm.py"), "S", "--hidden", "8", "--rounds", "2", "--steps", "1",
                         "--contenders", contenders, "--json", str(out)], timeout=900)
    assert result.returncode == 0, result.stderr
    figures = json_load(out)
    config = figures["configs"]["S/H=8"]
    assert set(config["contenders"]) == set(contenders.split(",")) - {"floor"}
    for name, r in [*config["contenders"].items(), ("floor", config["floor"])]:
        assert len(r["chars_per_sec"]) == 2 and r["min"] <= r["median"] <= r["max"], name
        assert all(c > 0 for c in r["chars_per_sec"]), name
    for name, r in config["contenders"].items():
        assert r["peak_bytes"] > 0 and r["peak_kind"], name
        assert r["first_loss"] == pytest.approx(config["contenders"]["tinygrad"]["first_loss"], rel=1e-5)
    assert config["contenders"]["tinygrad"]["replayed"] >= 1  # timed as the trainer runs it
    assert config["floor"]["gemms"] and {"cores", "numpy", "blas", "load_average"} <= set(figures["machine"])
    assert "x floor" in result.stdout and "fresh process" in result.stdout


def test_bench_lstm_in_process_check_says_it_is_not_fair():
    result = run_script([str(DEMOS / "bench_lstm.py"), "S", "--hidden", "8", "--steps", "1", "--in-process",
                         "--contenders", "tinygrad,numpy"], timeout=600)
    assert result.returncode == 0, result.stderr
    assert "NOT a fair measurement" in result.stdout and "chars/s" in result.stdout


def test_first_step_losses_that_disagree_stop_the_benchmark():
    cfg = BenchConfig(name="X")
    with pytest.raises(AssertionError, match="do not compute the same thing"):
        bench_lstm.check_losses(cfg, {"tinygrad": {"first_loss": 4.17}, "torch": {"first_loss": 4.18}})


@pytest.mark.parametrize("model, gates", [("lstm", 4), ("gru", 3), ("rnn", 1)])
def test_the_floor_lists_every_matrix_product_of_the_step(model, gates):
    # The list comes from the step's captured program; here it is checked against the products
    # the model needs, counted by hand: per layer, T forward h W_hh^T, T - 1 backward dA W_hh (h0
    # is the carried, detached state), the input projection and the two weight gradients; the
    # projection's input gradient above layer 1; the head's forward, weight and input gradients.
    from tinygrad_rnn.charlm.bench import step_gemms

    T, B, H, L = 5, 3, 6, 2
    cfg = BenchConfig(hidden=H, layers=L, batch=B, seq_len=T, model=model)
    shapes = [(tuple(g["a"][0]), tuple(g["b"][0])) for g in step_gemms(cfg)]
    G = gates * H
    expected = ([((B, H), (H, G))] * T * L + [((B, G), (G, H))] * (T - 1) * L
                + [((T * B, 65), (65, G)), ((T * B, H), (H, G))]  # input projections
                + [((65, T * B), (T * B, G)), ((H, T * B), (T * B, G))] + [((H, T * B), (T * B, G))] * L
                + [((T * B, G), (G, H))]  # layer 2's input gradient
                + [((T * B, H), (H, 65)), ((H, T * B), (T * B, 65)), ((T * B, 65), (65, H))])  # the head
    assert sorted(shapes) == sorted(expected)


def test_gemm_floor_times_every_product_of_the_step():
    from tinygrad_rnn.charlm.bench import gemm_floor

    floor = gemm_floor(BenchConfig(hidden=6, layers=1, batch=3, seq_len=4), repeats=2)
    assert floor.seconds > 0 and floor.chars_per_sec == pytest.approx(12 / floor.seconds)
    assert sum(g["count"] for g in floor.gemms) == 4 + 3 + 1 + 2 + 3  # T fwd, T-1 bwd, proj, W grads, head
    assert all(g["seconds"] > 0 for g in floor.gemms)


def _has_torch() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def json_load(path):
    import json

    with open(path) as fh:
        return json.load(fh)
