"""The tinygrad-rnn command: run folder contents, exact resume, sampling, eval, errors, atomic saves."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn.charlm import builtin_corpus, checkpoint, trainer, unigram_bits
from tinygrad_rnn.cli import main

SMALL = ["--hidden-size", "16", "--num-layers", "1", "--batch-size", "4", "--seq-len", "8", "--quiet"]


@pytest.fixture
def text_file(tmp_path):
    """A small, learnable text: short lines with a strong pattern."""
    words = ["def", "return", "self", "value", "import", "class", "print"]
    rng = np.random.default_rng(0)
    lines = [f"{words[i % 7]} x{i % 5} = {words[(i * 3) % 7]}(x{(i + 1) % 5})\n" for i in rng.integers(0, 1000, 300)]
    path = tmp_path / "data.txt"
    path.write_text("".join(lines), encoding="utf-8")
    return str(path)


def read_metrics(run_dir) -> list[dict]:
    with open(os.path.join(run_dir, "metrics.jsonl"), encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def test_train_writes_every_run_file_and_metrics_line(text_file, tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", "--data", text_file, "--max-steps", "6", "--eval-every", "3", "--out", out] + SMALL) == 0
    for name in ["config.json", "metrics.jsonl", "latest.npz", "best.npz", "samples.txt", "loss.png"]:
        assert os.path.isfile(os.path.join(out, name)), name
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    for r in rows:
        assert {"step", "train_loss", "elapsed_s", "chars_per_sec"} <= set(r)
    assert [r["step"] for r in rows if "val_loss" in r] == [3, 6]
    assert all(math.isclose(r["val_bpc"], r["val_loss"] / math.log(2)) for r in rows if "val_loss" in r)
    summary = capsys.readouterr().out
    assert "best val" in summary and "bpc" in summary and out in summary


@pytest.mark.parametrize("epoch_offset", ["fixed", "random"])
def test_resume_continues_exactly_like_an_uninterrupted_run(text_file, tmp_path, epoch_offset):
    # Dropout, two layers and epoch wrap-around with lr decay: every piece of state must be restored.
    opts = ["--data", text_file, "--eval-every", "4", "--dropout", "0.3", "--num-layers", "2",
            "--lr-decay", "0.9", "--batch-size", "16", "--seq-len", "24", "--hidden-size", "12", "--quiet",
            "--epoch-offset", epoch_offset]
    straight, split = str(tmp_path / "straight"), str(tmp_path / "split")
    assert main(["train", "--max-steps", "16", "--out", straight] + opts) == 0
    assert main(["train", "--max-steps", "8", "--out", split] + opts) == 0
    assert main(["train", "--resume", split, "--max-steps", "16", "--quiet"]) == 0
    a, b = read_metrics(straight), read_metrics(split)
    assert max(r["epoch"] for r in a) >= 1, "the text should wrap around at least once"
    keys = ["step", "train_loss", "lr", "epoch", "val_loss"]
    assert [[r.get(k) for k in keys] for r in a] == [[r.get(k) for k in keys] for r in b]


def test_resume_drops_metrics_logged_after_the_last_checkpoint(text_file, tmp_path):
    out = str(tmp_path / "run")
    assert main(["train", "--data", text_file, "--max-steps", "4", "--eval-every", "4", "--out", out] + SMALL) == 0
    with open(os.path.join(out, "metrics.jsonl"), "a", encoding="utf-8") as fh:  # as if killed at step 5
        fh.write(json.dumps({"step": 5, "train_loss": 9.9, "elapsed_s": 1.0, "chars_per_sec": 1.0}) + "\n")
    assert main(["train", "--resume", out, "--max-steps", "6", "--quiet"]) == 0
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6] and rows[4]["train_loss"] != 9.9


def test_resume_refuses_to_change_the_model_shape(text_file, tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", "--data", text_file, "--max-steps", "2", "--out", out] + SMALL) == 0
    capsys.readouterr()
    assert main(["train", "--resume", out, "--hidden-size", "32"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--hidden-size" in err


class FakeClock:
    """The trainer's clock, advancing ``tick`` seconds at every reading."""

    def __init__(self, tick: float) -> None:
        self.t, self.tick = 0.0, tick

    def __call__(self) -> float:
        self.t += self.tick
        return self.t


def test_resume_overrides_lr_and_decay_and_the_next_resume_keeps_the_latest_config(text_file, tmp_path,
                                                                                    monkeypatch):
    out = str(tmp_path / "run")
    assert main(["train", "--data", text_file, "--max-steps", "4", "--eval-every", "100", "--out", out] + SMALL) == 0
    # Each step reads the clock twice, 40 s apart: the 1-minute budget ends this session after one step.
    monkeypatch.setattr(trainer, "_clock", FakeClock(40.0))
    assert main(["train", "--resume", out, "--max-steps", "8", "--max-minutes", "1", "--lr", "0.5",
                 "--lr-decay", "0.5"]) == 0
    ck = checkpoint.load(os.path.join(out, "latest.npz"))
    assert ck["step"] == 5
    group = ck["optimizer"]["param_groups"][0]
    assert group["lr"] == 0.5 and group["initial_lr"] == 0.5 and ck["scheduler"]["gamma"] == 0.5
    assert read_metrics(out)[-1]["lr"] == 0.5
    with open(os.path.join(out, "config.json"), encoding="utf-8") as fh:
        saved = json.load(fh)
    assert (saved["max_steps"], saved["lr"], saved["lr_decay"]) == (8, 0.5, 0.5)
    monkeypatch.undo()
    # No options: the run goes on with the config now in force (max_steps 8, not the first start's 4).
    assert main(["train", "--resume", out]) == 0
    ck = checkpoint.load(os.path.join(out, "latest.npz"))
    assert ck["step"] == 8 and ck["config"]["max_steps"] == 8
    assert ck["optimizer"]["param_groups"][0]["lr"] == 0.5 and ck["scheduler"]["gamma"] == 0.5
    assert [r["step"] for r in read_metrics(out)] == list(range(1, 9))


@pytest.mark.parametrize("tick", [0.7, 1.0, 7.0, 13.0])
def test_a_run_ended_by_its_time_budget_always_validates_and_checkpoints_its_last_step(text_file, tmp_path,
                                                                                       monkeypatch, tick):
    monkeypatch.setattr(trainer, "_clock", FakeClock(tick))
    out = str(tmp_path / "run")
    assert main(["train", "--data", text_file, "--max-minutes", str(61 / 60), "--eval-every", "1000",
                 "--out", out] + SMALL) == 0
    rows = read_metrics(out)
    assert rows and "val_loss" in rows[-1]
    assert checkpoint.load(os.path.join(out, "latest.npz"))["step"] == rows[-1]["step"]
    assert os.path.isfile(os.path.join(out, "best.npz"))


def test_evaluate_restores_the_model_mode(text_file):
    from tinygrad_rnn.charlm import CharRNN, evaluate

    model = CharRNN(5, 4, 1)
    val = np.zeros((2, 9), dtype=np.int64)
    for mode in (True, False):
        model.train(mode)
        evaluate(model, val, 4)
        assert model.training is mode


@pytest.fixture
def trained(text_file, tmp_path):
    out = str(tmp_path / "run")
    assert main(["train", "--data", text_file, "--max-steps", "60", "--eval-every", "30", "--lr", "2e-2",
                 "--out", out] + SMALL + ["--hidden-size", "32"]) == 0
    return out


def test_sample_is_reproducible_and_temperature_zero_is_argmax(trained, capsys):
    capsys.readouterr()

    def sample(*extra: str) -> str:
        assert main(["sample", trained, "--length", "80", "--prime", "def "] + list(extra)) == 0
        return capsys.readouterr().out

    a, b, c = sample("--seed", "1"), sample("--seed", "1"), sample("--seed", "2")
    assert a == b and a != c and a.startswith("def ")
    assert len(a) == len("def ") + 80 + 1  # the prime, 80 generated characters, the final newline
    greedy = sample("--temperature", "0", "--seed", "1")
    assert greedy == sample("--temperature", "0", "--seed", "7") == sample("--top-k", "1", "--seed", "3")


def test_eval_on_the_validation_text_gives_the_logged_validation_loss(trained, text_file, tmp_path, capsys):
    with open(text_file, encoding="utf-8") as fh:
        text = fh.read()
    val = tmp_path / "val.txt"  # the run's validation split: the last 10% of the text
    val.write_text(text[len(text) - int(len(text) * 0.1):], encoding="utf-8")
    best = min(r["val_loss"] for r in read_metrics(trained) if "val_loss" in r)
    capsys.readouterr()
    assert main(["eval", os.path.join(trained, "best.npz"), "--data", str(val)]) == 0
    out = capsys.readouterr().out
    nats, bits = (float(out.split(": ")[1].split(" nats")[0]), float(out.split(", ")[1].split(" bits")[0]))
    assert abs(nats - best) < 1e-4
    assert math.isclose(bits, nats / math.log(2), rel_tol=1e-3)


def test_training_learns_well_below_the_unigram_baseline(trained, text_file):
    rows = read_metrics(trained)
    with open(text_file, encoding="utf-8") as fh:
        baseline = unigram_bits(fh.read())
    assert rows[-1]["val_bpc"] < 0.85 * baseline


@pytest.mark.parametrize("argv, words", [
    (["train", "--data", "/nonexistent/file.txt"], ["no such file"]),
    (["train", "--hidden-size", "0"], ["--hidden-size"]),
    (["train", "--model", "transformer"], ["--model"]),
    (["sample", "/nonexistent/run"], ["no such"]),
    (["train", "--resume", "."], ["latest.npz"]),
])
def test_bad_input_exits_with_status_2_and_one_line(argv, words, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an empty folder: nothing may be written to it
    assert main(argv) == 2
    assert os.listdir(tmp_path) == [], "bad input left files behind"
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert all(w in err for w in words), err


def test_prime_with_unknown_characters_is_a_clear_error(trained, capsys):
    capsys.readouterr()
    assert main(["sample", trained, "--prime", "\u00e9\u00e9"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "vocabulary" in err


@pytest.mark.skipif(tg.cuda_available(), reason="checks the message shown where CuPy is missing")
def test_cuda_without_cupy_says_to_install_the_gpu_extra(text_file, capsys):
    assert main(["train", "--data", text_file, "--device", "cuda"] + SMALL) == 2
    assert "gpu" in capsys.readouterr().err


def test_checkpoint_save_is_atomic(tmp_path, monkeypatch):
    path = str(tmp_path / "latest.npz")
    checkpoint.save(path, {"w": np.arange(4.0), "step": 1})

    def crash(fh, arrays):
        fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.backend, "save_npz", crash)
    with pytest.raises(OSError):
        checkpoint.save(path, {"w": np.zeros(4), "step": 2})
    state = checkpoint.load(path)
    assert state["step"] == 1 and np.array_equal(state["w"], np.arange(4.0))
    assert os.listdir(tmp_path) == ["latest.npz"], "no temporary file is left behind"


def test_checkpoint_round_trips_nested_state_with_int_keys_and_tuples():
    state = {"opt": {0: {"m": np.ones(3), "step": 4}}, "hidden": (np.zeros(2), np.ones(2)), "name": "x"}
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        checkpoint.save(os.path.join(d, "c.npz"), state)
        back = checkpoint.load(os.path.join(d, "c.npz"))
    assert back["opt"][0]["step"] == 4 and np.array_equal(back["opt"][0]["m"], np.ones(3))
    assert isinstance(back["hidden"], tuple) and back["name"] == "x"


def test_builtin_corpus_is_a_fixed_selection_of_about_a_megabyte():
    a, b = builtin_corpus(), builtin_corpus()
    assert a.text == b.text and 1_000_000 <= len(a.text) < 1_300_000
    assert "standard library" in a.description


@pytest.mark.skipif(not tg.cuda_available(), reason="needs a GPU")
def test_checkpoint_written_on_cuda_samples_on_cpu(text_file, tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", "--data", text_file, "--max-steps", "3", "--device", "cuda", "--out", out] + SMALL) == 0
    capsys.readouterr()
    assert main(["sample", out, "--device", "cpu", "--temperature", "0", "--length", "20"]) == 0
    cpu = capsys.readouterr().out
    assert main(["sample", out, "--device", "cuda", "--temperature", "0", "--length", "20"]) == 0
    assert capsys.readouterr().out == cpu


def test_python_dash_m_runs_the_command():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "-m", "tinygrad_rnn", "train", "--help"], capture_output=True,
                            text=True, timeout=120, cwd=repo)  # this checkout, not another installed copy
    assert result.returncode == 0 and "--max-steps" in result.stdout


SHAKESPEARE = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "tinyshakespeare.txt")


@pytest.mark.skipif(not os.path.isfile(SHAKESPEARE), reason="tiny-shakespeare is not next to the project")
def test_tiny_shakespeare_trains_with_its_65_character_vocabulary(tmp_path):
    out = str(tmp_path / "run")
    assert main(["train", "--data", SHAKESPEARE, "--max-steps", "3", "--eval-every", "3", "--out", out]
                + SMALL) == 0
    with open(os.path.join(out, "config.json"), encoding="utf-8") as fh:
        assert json.load(fh)["vocab_size"] == 65
    assert read_metrics(out)[-1]["val_loss"] < math.log(65) + 0.1


def test_random_epoch_offsets_move_each_epochs_windows_and_depend_only_on_seed_and_epoch():
    from tinygrad_rnn.charlm.corpus import Batches

    data = np.arange(3 * 40).reshape(3, 40)  # 3 streams of 40 ids: an id tells its column
    fixed, moved = Batches(data, 5), Batches(data, 5, offset_seed=7)
    starts: dict[str, list[int]] = {"fixed": [], "moved": []}
    for name, b in (("fixed", fixed), ("moved", moved)):
        for _ in range(40):
            x, y, state, new_epoch = b.next()
            b.chunks.carry(state)
            if new_epoch or not starts[name]:
                starts[name].append(int(x[0, 0]))  # the column the epoch's first window starts at
            np.testing.assert_array_equal(y, x + 1)  # targets stay the next character
    offsets = [moved.offset(e) for e in range(len(starts["moved"]))]
    assert starts["fixed"] == [0] * len(starts["fixed"]) and starts["moved"] == offsets
    assert offsets[0] == 0 and len(set(offsets[1:])) > 1 and all(0 <= o < 5 for o in offsets)
    assert [Batches(data, 5, offset_seed=7).offset(e) for e in range(len(offsets))] == offsets  # nothing to save
