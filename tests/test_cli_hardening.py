"""The command never loses work and never trains on garbage: runs are not clobbered, damaged or foreign
files and bad text are refused in one line, numerical faults stop training with the last finite checkpoints."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
import warnings
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_rnn as tg
from tinygrad_rnn.charlm import checkpoint, trainer
from tinygrad_rnn.cli import main

SMALL = ["--hidden-size", "16", "--num-layers", "1", "--batch-size", "4", "--seq-len", "8", "--quiet"]


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    words = ["def", "return", "self", "value", "import", "class", "print"]
    rng = np.random.default_rng(0)
    lines = [f"{words[i % 7]} x{i % 5} = {words[(i * 3) % 7]}(x{(i + 1) % 5})\n" for i in rng.integers(0, 1000, 300)]
    path = tmp_path_factory.mktemp("text") / "data.txt"
    path.write_text("".join(lines), encoding="utf-8")
    return str(path)


def strict_rows(run_dir) -> list[dict]:
    """metrics.jsonl parsed by a strict JSON parser: NaN, Infinity and -Infinity are errors."""
    def refuse(name):
        raise ValueError(f"{name} in metrics.jsonl")
    with open(os.path.join(run_dir, "metrics.jsonl"), encoding="utf-8") as fh:
        return [json.loads(line, parse_constant=refuse) for line in fh]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def digest(path) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def snapshot(run_dir) -> dict:
    return {n: digest(os.path.join(run_dir, n)) for n in sorted(os.listdir(run_dir))}


@pytest.fixture(scope="module")
def trained_once(text_file, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("trained") / "run")
    assert main(["train", "--data", text_file, "--max-steps", "4", "--eval-every", "2", "--out", out] + SMALL) == 0
    return out


@pytest.fixture
def run_dir(trained_once, tmp_path):
    """A run of 4 steps (checkpoints at 2 and 4), a fresh copy for each test."""
    out = str(tmp_path / "run")
    shutil.copytree(trained_once, out)
    return out


# ---------------------------------------------------------------- 1. a run is never clobbered

def test_train_out_onto_a_run_is_refused_and_names_resume_and_overwrite(run_dir, text_file, capsys):
    before = snapshot(run_dir)
    capsys.readouterr()
    assert main(["train", "--data", text_file, "--max-steps", "2", "--out", run_dir] + SMALL
                + ["--hidden-size", "8"]) == 2
    err = one_line_error(capsys)
    assert f"--resume {run_dir}" in err and "--overwrite" in err
    assert snapshot(run_dir) == before


def test_overwrite_replaces_the_old_run_without_mixing_their_files(run_dir, text_file):
    assert main(["train", "--data", text_file, "--max-steps", "3", "--eval-every", "10", "--out", run_dir,
                 "--overwrite"] + SMALL + ["--hidden-size", "8"]) == 0
    assert [r["step"] for r in strict_rows(run_dir)] == [1, 2, 3]
    for name in ("latest.npz", "best.npz"):  # the old best.npz (hidden 16) must not survive beside the new run
        assert checkpoint.load(os.path.join(run_dir, name))["config"]["hidden_size"] == 8
    with open(os.path.join(run_dir, "samples.txt"), encoding="utf-8") as fh:
        assert fh.read().count("===== step") == 1


def test_two_runs_started_in_the_same_second_get_their_own_folders(text_file, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(time, "strftime", lambda fmt, *args: "20250101-000000")  # the clock stands still
    for seed in ("1", "2"):
        assert main(["train", "--data", text_file, "--max-steps", "2", "--seed", seed] + SMALL) == 0
    runs = sorted(os.listdir(tmp_path / "runs"))
    assert runs == ["20250101-000000", "20250101-000000-2"]
    seeds = [checkpoint.load(str(tmp_path / "runs" / r / "latest.npz"))["config"]["seed"] for r in runs]
    assert seeds == [1, 2]
    assert [[r["step"] for r in strict_rows(tmp_path / "runs" / r)] for r in runs] == [[1, 2], [1, 2]]


def test_default_run_folders_are_created_exclusively_under_a_race(tmp_path, monkeypatch):
    from tinygrad_rnn.charlm import runfolder

    monkeypatch.setattr(runfolder, "timestamp", lambda: "20250101-000000")
    barrier, made = threading.Barrier(8), []

    def start():
        barrier.wait()
        folder = runfolder.RunFolder.create(None, root=str(tmp_path / "runs"))
        made.append(folder.path)
        folder.close()

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == len(set(made)) == 8


@pytest.mark.parametrize("case", ["short text", "binary text", "missing file", "bad option", "cuda", "bad out"])
def test_refused_input_creates_no_run_folder(case, text_file, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "short.txt").write_text("abc" * 10, encoding="utf-8")
    (tmp_path / "binary.txt").write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8)))
    (tmp_path / "a_file").write_text("x", encoding="utf-8")
    argv = {"short text": ["--data", "short.txt"], "binary text": ["--data", "binary.txt"],
            "missing file": ["--data", "nope.txt"], "bad option": ["--data", text_file, "--lr", "nan"],
            "cuda": ["--data", text_file, "--device", "cuda"], "bad out": ["--data", text_file, "--out", "a_file"]}
    if case == "cuda" and tg.cuda_available():
        pytest.skip("refused only where CUDA is missing")
    before = sorted(os.listdir(tmp_path))
    assert main(["train", "--max-steps", "1"] + argv[case] + SMALL) == 2
    one_line_error(capsys)
    assert sorted(os.listdir(tmp_path)) == before, "a refused run left files behind"


@pytest.mark.parametrize("steps", ["4", "3"])
def test_resume_at_or_past_max_steps_is_refused_with_the_runs_step(run_dir, steps, capsys):
    before = snapshot(run_dir)
    capsys.readouterr()
    assert main(["train", "--resume", run_dir, "--max-steps", steps]) == 2
    assert "the run is already at step 4" in one_line_error(capsys)
    assert snapshot(run_dir) == before


def test_a_run_folder_in_use_by_another_train_is_refused(run_dir, capsys):
    import fcntl

    fd = os.open(run_dir, os.O_RDONLY)  # as a running `train` holds it
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        before = snapshot(run_dir)
        capsys.readouterr()
        assert main(["train", "--resume", run_dir, "--max-steps", "6"]) == 2
        assert "another tinygrad-rnn train" in one_line_error(capsys)
        assert snapshot(run_dir) == before
    finally:
        os.close(fd)
    assert main(["train", "--resume", run_dir, "--max-steps", "6"]) == 0


def test_a_checkpoint_written_by_another_train_while_resume_starts_is_not_overwritten(run_dir, monkeypatch,
                                                                                         capsys):
    real = trainer.read_checkpoint

    def read_then_another_train_saves(path, keys):  # the other train ends with a save before this one locks
        ck = real(path, keys)
        shutil.copy(path, path + ".new")
        os.replace(path + ".new", path)
        return ck

    monkeypatch.setattr(trainer, "read_checkpoint", read_then_another_train_saves)
    before = strict_rows(run_dir)
    capsys.readouterr()
    assert main(["train", "--resume", run_dir, "--max-steps", "6"]) == 2
    assert "changed while this command started" in one_line_error(capsys)
    assert strict_rows(run_dir) == before


@pytest.mark.parametrize("argv, words", [
    (["--out", "elsewhere"], ["--out cannot be used with --resume"]),
    (["--overwrite"], ["--overwrite cannot be used with --resume"]),
])
def test_resume_refuses_options_that_would_move_or_delete_the_run(run_dir, argv, words, capsys):
    capsys.readouterr()
    assert main(["train", "--resume", run_dir, "--max-steps", "6"] + argv) == 2
    err = one_line_error(capsys)
    assert all(w in err for w in words), err


# ---------------------------------------------------------------- 2. damaged and foreign files

def _resave(src, dst, edit):
    """Rewrite the .npz ``src`` as ``dst`` (a valid zip) after ``edit(dict of arrays)``."""
    with np.load(src) as z:
        arrays = {k: z[k].copy() for k in z.files}
    edit(arrays)
    np.savez(dst, **arrays)


def _bump_array(arrays):
    name = sorted(k for k in arrays if k != "meta" and arrays[k].dtype.kind == "f")[0]
    arrays[name].reshape(-1)[0] += np.float32(1e-3)


def _newer(arrays):
    meta = json.loads(str(arrays["meta"]))
    meta["format"] = "tinygrad_rnn.charlm/3"
    arrays["meta"] = np.array(json.dumps(meta))


def _edit_meta_step(arrays):
    meta = json.loads(str(arrays["meta"]))
    pair = next(p for p in meta["state"]["__dict__"] if p[0] == "step")  # the state's entries: [key, value]
    pair[1] += 1
    arrays["meta"] = np.array(json.dumps(meta))


DAMAGE = {  # name -> (how to make the file from a good one, words the message must hold)
    "truncated": (lambda src, dst: _write(dst, _read(src)[: len(_read(src)) // 2]), ["damaged"]),
    "cut at the end": (lambda src, dst: _write(dst, _read(src)[:-30]), ["damaged"]),
    "not a zip": (lambda src, dst: _write(dst, b"just some text\n" * 10), ["not a tinygrad_rnn checkpoint"]),
    "empty": (lambda src, dst: _write(dst, b""), ["empty"]),
    "foreign npz": (lambda src, dst: np.savez(dst, weights=np.ones(3)), ["no 'meta'"]),
    "pickles": (lambda src, dst: np.savez(dst, meta=np.array([{"a": 1}], dtype=object)), ["pickled"]),
    "plain zip": (lambda src, dst: zipfile.ZipFile(dst, "w").close(), ["not a tinygrad_rnn checkpoint"]),
    "changed array": (lambda src, dst: _resave(src, dst, _bump_array), ["checksum"]),
    "changed meta": (lambda src, dst: _resave(src, dst, _edit_meta_step), ["checksum"]),
    "newer format": (lambda src, dst: _resave(src, dst, _newer), ["newer tinygrad_rnn", "format 3", "up to 2"]),
}


def _read(path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def _write(path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)


@pytest.mark.parametrize("damage", list(DAMAGE))
@pytest.mark.parametrize("command", ["sample", "eval", "resume", "sample best"])
def test_damaged_foreign_or_newer_checkpoints_give_one_line_naming_the_file(run_dir, text_file, damage, command,
                                                                            capsys):
    name = "best.npz" if command == "sample best" else "latest.npz"
    path = os.path.join(run_dir, name)
    good = path + ".good"
    os.replace(path, good)
    make, words = DAMAGE[damage]
    make(good, path)
    before = snapshot(run_dir)
    argv = {"sample": ["sample", path], "eval": ["eval", path, "--data", text_file],
            "resume": ["train", "--resume", run_dir, "--max-steps", "8"],
            "sample best": ["sample", run_dir]}[command]  # a run folder: best.npz first
    capsys.readouterr()
    assert main(argv) == 2
    err = one_line_error(capsys)
    assert path in err and all(w in err for w in words), err
    assert snapshot(run_dir) == before, "a refused command changed the run folder"


@settings(max_examples=15)
@given(st.data())
def test_the_checksum_finds_any_flipped_bit_in_any_array(tmp_path_factory, data):
    d = tmp_path_factory.mktemp("ck")
    path, flipped = str(d / "c.npz"), str(d / "flipped.npz")
    state = {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "m": (np.ones(5), np.zeros((2, 2), np.int64)),
             "step": 7}
    checkpoint.save(path, state)
    with np.load(path) as z:
        names = sorted(k for k in z.files if k != "meta")
    name = data.draw(st.sampled_from(names))

    def flip(arrays):
        raw = arrays[name].view(np.uint8).reshape(-1)
        raw[data.draw(st.integers(0, raw.size - 1))] ^= np.uint8(1 << data.draw(st.integers(0, 7)))

    _resave(path, flipped, flip)  # a valid zip (fresh CRCs) with one bit changed inside one array
    with pytest.raises(checkpoint.CheckpointError, match="checksum"):
        checkpoint.load(flipped)
    assert checkpoint.load(path)["step"] == 7


def test_format_1_checkpoints_still_load_and_sample(run_dir, capsys):
    old = os.path.join(run_dir, "format1.npz")

    def to_format_1(arrays):  # what the previous version wrote: no checksum
        meta = json.loads(str(arrays["meta"]))
        meta["format"] = "tinygrad_rnn.charlm/1"
        del meta["sha256"]
        arrays["meta"] = np.array(json.dumps(meta))

    _resave(os.path.join(run_dir, "latest.npz"), old, to_format_1)
    capsys.readouterr()
    assert main(["sample", old, "--length", "20", "--temperature", "0"]) == 0
    from_old = capsys.readouterr().out
    assert main(["sample", os.path.join(run_dir, "latest.npz"), "--length", "20", "--temperature", "0"]) == 0
    assert capsys.readouterr().out == from_old


def test_text_that_is_not_utf8_is_refused_with_the_byte_offset_unless_replacement_is_asked(text_file, tmp_path,
                                                                                          capsys):
    good = _read(text_file)
    bad = tmp_path / "bad.txt"
    bad.write_bytes(good[:1234] + b"\xff" + good[1234:])
    out = str(tmp_path / "run")
    capsys.readouterr()
    assert main(["train", "--data", str(bad), "--max-steps", "1", "--out", out] + SMALL) == 2
    err = one_line_error(capsys)
    assert "byte offset 1234" in err and "0xff" in err and "--encoding-errors replace" in err
    assert not os.path.exists(out)
    assert main(["train", "--data", str(bad), "--max-steps", "1", "--out", out, "--encoding-errors", "replace"]
                + SMALL) == 0
    with open(os.path.join(out, "config.json"), encoding="utf-8") as fh:
        config = json.load(fh)
    assert "1 invalid UTF-8 sequence" in config["corpus"] and config["encoding_errors"] == "replace"


def test_eval_skips_or_maps_unknown_characters_when_asked_and_reports_them(run_dir, text_file, tmp_path, capsys):
    clean = _read(text_file).decode()[:2000]
    mixed = clean[:500] + "\u00e9" + clean[500:1000] + "\u00e9\u00fc" + clean[1000:]
    files = {}
    for name, text in {"mixed": mixed, "skipped": clean, "mapped": mixed.replace("\u00e9", "x").replace("\u00fc", "x")
                       }.items():
        files[name] = tmp_path / f"{name}.txt"
        files[name].write_text(text, encoding="utf-8")

    def run_eval(path, *extra):
        capsys.readouterr()
        code = main(["eval", run_dir, "--data", str(path), *extra])
        return code, capsys.readouterr()

    code, res = run_eval(files["mixed"])
    assert code == 2 and "3 character(s) (2 distinct)" in res.err and "--unknown skip" in res.err
    loss = lambda out: float(out.split(": ")[1].split(" nats")[0])  # noqa: E731
    code, res = run_eval(files["mixed"], "--unknown", "skip")
    assert code == 0 and "3 character(s) outside the vocabulary skipped" in res.out
    assert loss(res.out) == loss(run_eval(files["skipped"])[1].out)
    code, res = run_eval(files["mixed"], "--unknown", "map:x")
    assert code == 0 and "read as 'x'" in res.out
    assert loss(res.out) == loss(run_eval(files["mapped"])[1].out)
    for bad in ("map:\u00e9", "map:xy", "drop"):
        code, res = run_eval(files["mixed"], "--unknown", bad)
        assert code == 2 and res.err.count("\n") == 1 and "--unknown" in res.err


# ---------------------------------------------------------------- 3. numerical faults

@pytest.mark.parametrize("option, value", [
    ("--lr", "inf"), ("--lr", "nan"), ("--lr", "-inf"), ("--dropout", "nan"), ("--grad-clip", "inf"),
    ("--max-minutes", "nan"), ("--max-minutes", "inf"), ("--lr-decay", "nan"), ("--val-frac", "nan"),
    ("--lr", "0"), ("--dropout", "1"), ("--val-frac", "1"), ("--grad-clip", "-1"), ("--max-loss", "nan"),
    ("--seed", "-3"), ("--hidden-size", "0"), ("--eval-every", "0"),
])
def test_non_finite_or_out_of_range_options_are_refused_at_parse_time(option, value, text_file, tmp_path, capsys,
                                                                     monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = sorted(os.listdir(tmp_path))
    assert main(["train", "--data", text_file, "--max-steps", "1", option, value] + SMALL) == 2
    assert option in one_line_error(capsys)
    assert sorted(os.listdir(tmp_path)) == before


@pytest.mark.parametrize("argv", [["--temperature", "nan"], ["--temperature", "inf"], ["--length", "-1"],
                                  ["--top-k", "0"]])
def test_sample_options_are_checked_at_parse_time(run_dir, argv, capsys):
    capsys.readouterr()
    assert main(["sample", run_dir] + argv) == 2
    assert argv[0] in one_line_error(capsys)


def test_the_library_refuses_non_finite_options_too():
    with pytest.raises(ValueError, match="--lr must be a finite number"):
        trainer.TrainConfig(lr=float("inf")).validate()


def assert_checkpoints_finite_at(run_dir, step):
    for name in ("latest.npz", "best.npz"):
        ck = checkpoint.load(os.path.join(run_dir, name))  # verifies the checksum too
        assert all(np.isfinite(a).all() for a in ck["model"].values()), name
    assert checkpoint.load(os.path.join(run_dir, "latest.npz"))["step"] == step


@pytest.mark.parametrize("norm_kind", ["float", "0-d array", "0-d tensor"])
def test_a_non_finite_gradient_norm_stops_training_and_keeps_the_last_finite_checkpoints(
        text_file, tmp_path, monkeypatch, capsys, norm_kind):
    real = trainer.clip_grad_norm_
    calls = []

    def clip(params, max_norm):  # step 7's gradient norm is NaN; the value in the form clip_grad_norm_ may give
        norm = real(params, max_norm)
        calls.append(1)
        value = float("nan") if len(calls) == 7 else float(norm)
        return {"float": value, "0-d array": np.float64(value) * np.ones(()),
                "0-d tensor": tg.tensor(value)}[norm_kind]

    monkeypatch.setattr(trainer, "clip_grad_norm_", clip)
    out = str(tmp_path / "run")
    assert main(["train", "--data", text_file, "--max-steps", "20", "--eval-every", "3", "--out", out] + SMALL) == 3
    err = one_line_error(capsys)
    assert "step 7" in err and "gradient norm is nan" in err and "step 6" in err
    assert [r["step"] for r in strict_rows(out)] == list(range(1, 7))
    assert_checkpoints_finite_at(out, 6)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("poisoned_step, stop_step, saved_step", [(4, 4, 2), (5, 6, 4)])
def test_non_finite_weights_stop_training_before_any_checkpoint_of_them_and_without_numpy_warnings(
        text_file, tmp_path, monkeypatch, capsys, bad, poisoned_step, stop_step, saved_step):
    """The optimizer step of ``poisoned_step`` leaves one weight NaN or infinite. At a validation step the
    validation loss shows it before the checkpoint is written; otherwise the next step's loss does."""
    from tinygrad_rnn.optim import Adam

    real, calls = Adam.step, []

    def step(self, *args, **kw):
        result = real(self, *args, **kw)
        calls.append(1)
        if len(calls) == poisoned_step:
            self.param_groups[0]["params"][0].data[0, 0] = bad
        return result

    monkeypatch.setattr(Adam, "step", step)
    out = str(tmp_path / "run")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["train", "--data", text_file, "--max-steps", "20", "--eval-every", "2", "--out", out]
                    + SMALL) == 3
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], [str(w.message) for w in caught]
    err = one_line_error(capsys)
    assert f"stopped at step {stop_step}:" in err and f"(step {saved_step})" in err, err
    assert "loss is nan" in err or "loss is inf" in err, err
    assert [r["step"] for r in strict_rows(out)] == list(range(1, stop_step))
    assert_checkpoints_finite_at(out, saved_step)


def test_an_exploding_learning_rate_ends_the_same_way(text_file, tmp_path):
    """--lr 50 drives the loss to hundreds of nats/char without ever making it infinite."""
    from helpers import run_script

    out = str(tmp_path / "run")
    assert main(["train", "--data", text_file, "--max-steps", "4", "--eval-every", "2", "--out", out] + SMALL) == 0
    result = run_script(["-m", "tinygrad_rnn", "train", "--resume", out, "--max-steps", "40", "--lr", "50"])
    assert result.returncode == 3, result.stderr
    assert result.stderr.count("\n") == 1 and "Warning" not in result.stderr, result.stderr
    assert "diverged" in result.stderr and "--max-loss" in result.stderr and "step 4" in result.stderr
    rows = strict_rows(out)
    assert [r["step"] for r in rows] == list(range(1, len(rows) + 1)) and len(rows) < 10
    assert_checkpoints_finite_at(out, 4)
    assert checkpoint.load(os.path.join(out, "latest.npz"))["optimizer"]["param_groups"][0]["lr"] != 50


def test_a_run_within_max_loss_trains_normally_and_logs_the_gradient_norm(run_dir):
    rows = strict_rows(run_dir)
    assert all(r["grad_norm"] > 0 for r in rows)
