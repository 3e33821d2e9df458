"""Fault injection on ``tinygrad-rnn train``: SIGKILL at random moments (checkpoint writes included), a full
disk and a read-only folder during a save. Whatever happens, no checkpoint is damaged, metrics.jsonl stays
strict JSON with each step once, only the steps after the last checkpoint are lost, and resuming gives the
run an uninterrupted one would have been."""

from __future__ import annotations

import builtins
import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter

import numpy as np
import pytest
from helpers import CHECKOUT, checkout_env

from tinygrad_rnn.charlm import checkpoint, runfolder
from tinygrad_rnn.cli import main

# Tiny and checkpointing at every step, so that a good share of the time goes to writing files; two layers
# with dropout and an lr decay at each epoch (the text wraps around) put every piece of state to the test.
OPTS = ["--hidden-size", "8", "--num-layers", "2", "--dropout", "0.2", "--lr-decay", "0.9", "--batch-size", "2",
        "--seq-len", "8", "--eval-every", "1", "--quiet"]
COMPARED = ("step", "train_loss", "grad_norm", "lr", "epoch", "val_loss")  # all but the timings


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    words = ["def", "return", "self", "value", "import", "class", "print"]
    rng = np.random.default_rng(1)
    text = "".join(f"{words[i % 7]} x{i % 5} = {words[(i * 3) % 7]}(x{(i + 1) % 5})\n" for i in rng.integers(0, 99, 90))
    path = tmp_path_factory.mktemp("text") / "data.txt"
    path.write_text(text, encoding="utf-8")  # ~2,500 characters: an epoch is ~140 steps
    return str(path)


def strict_rows(run_dir) -> list[dict]:
    def refuse(name):
        raise ValueError(f"{name} in metrics.jsonl")
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line, parse_constant=refuse) for line in fh]


def compared(rows) -> list[list]:
    return [[r.get(k) for k in COMPARED] for r in rows]


def assert_same_run(a, b) -> None:
    """Two run folders hold the same training: metrics, samples, and every array of both checkpoints."""
    assert compared(strict_rows(a)) == compared(strict_rows(b))
    with open(os.path.join(a, "samples.txt"), encoding="utf-8") as fa, \
            open(os.path.join(b, "samples.txt"), encoding="utf-8") as fb:
        assert fa.read() == fb.read()
    for name in ("latest.npz", "best.npz"):
        ca, cb = checkpoint.load(os.path.join(a, name)), checkpoint.load(os.path.join(b, name))
        assert ca["step"] == cb["step"]
        for part in ("model", "optimizer"):
            flat_a, flat_b = _arrays(ca[part]), _arrays(cb[part])
            assert len(flat_a) == len(flat_b) and all(np.array_equal(x, y) for x, y in zip(flat_a, flat_b)), name


def _arrays(obj) -> list:
    if isinstance(obj, dict):
        return [a for k in sorted(obj, key=str) for a in _arrays(obj[k])]
    if isinstance(obj, (list, tuple)):
        return [a for v in obj for a in _arrays(v)]
    return [obj] if isinstance(obj, np.ndarray) else []


# ---------------------------------------------------------------- SIGKILL at random moments

def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tinygrad_rnn", "train", *args], cwd=CHECKOUT, env=checkout_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _check_after_kill(out: str, kept: list, stats: Counter) -> list:
    """Every invariant a kill must leave intact; returns the rows the next life must keep unchanged."""
    for name in sorted(os.listdir(out)):
        if checkpoint.is_temporary(name):  # a write the kill cut short: its target must be intact
            stats[f"killed while writing {name.split(checkpoint.TMP_MARK)[0]}"] += 1
    latest = os.path.join(out, "latest.npz")
    ck_step = checkpoint.load(latest)["step"] if os.path.exists(latest) else 0  # load() verifies the checksum
    if os.path.exists(os.path.join(out, "best.npz")):
        assert checkpoint.load(os.path.join(out, "best.npz"))["step"] <= ck_step
    rows = strict_rows(out)  # strict JSON, every line
    assert [r["step"] for r in rows] == list(range(1, len(rows) + 1)), "steps must increase by one, never repeat"
    assert len(rows) >= ck_step, "the checkpointed steps' metrics must all be there"
    assert compared(rows[: len(kept)]) == compared(kept), "a resume changed the metrics it should have kept"
    return rows[:ck_step]


def kill_and_resume(text_file: str, out: str, kills: int, seed: int) -> tuple[int, Counter]:
    """Start the run, SIGKILL it ``kills`` times at random moments, resuming each time; returns the
    step of the last checkpoint and what the kills hit."""
    rng, stats, kept = random.Random(seed), Counter(), []
    for _ in range(kills):
        if os.path.exists(os.path.join(out, "latest.npz")):
            args = ["--resume", out]
        else:  # killed before its first checkpoint: the run starts over (it is deterministic)
            args = ["--data", text_file, "--out", out, "--max-steps", "100000", "--overwrite", *OPTS]
        before = len(strict_rows(out))
        proc = _start(args)
        moment = rng.random()
        if moment < 0.15:  # during start-up, resume's clean-up and the first step
            time.sleep(rng.uniform(0.0, 1.5))
        else:  # after this life's first new metrics line: soon (its sample and checkpoint writes follow it
            deadline = time.monotonic() + 120  # within ~0.2 s), or anywhere in the next steps
            while len(strict_rows(out)) <= before and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.002)
            time.sleep(rng.uniform(0.0, 0.25) if moment < 0.6 else rng.uniform(0.0, 1.0))
        if proc.poll() is not None:
            pytest.fail(f"the run ended by itself (status {proc.returncode}): {proc.stderr.read().decode()}")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
        stats["kills"] += 1
        stats["kills before this life's first step"] += len(strict_rows(out)) <= before
        kept = _check_after_kill(out, kept, stats)
    return len(kept), stats


def run_kill_test(text_file, tmp_path, kills: int, seed: int) -> Counter:
    out, straight = str(tmp_path / "killed"), str(tmp_path / "straight")
    ck_step, stats = kill_and_resume(text_file, out, kills, seed)
    final = ck_step + 3
    assert main(["train", "--resume", out, "--max-steps", str(final)]) == 0
    assert main(["train", "--data", text_file, "--out", straight, "--max-steps", str(final)] + OPTS) == 0
    assert_same_run(out, straight)
    assert not [n for n in os.listdir(out) if checkpoint.is_temporary(n)], "resume removes what kills left"
    stats["final step"] = final
    print(dict(stats))
    return stats


def test_sigkill_five_times_then_resume_gives_the_uninterrupted_run(text_file, tmp_path):
    run_kill_test(text_file, tmp_path, kills=5, seed=0)


@pytest.mark.long
def test_sigkill_a_hundred_times_then_resume_gives_the_uninterrupted_run(text_file, tmp_path):
    stats = run_kill_test(text_file, tmp_path, kills=100, seed=1)
    assert stats["kills"] == 100


# ---------------------------------------------------------------- a full disk, a read-only folder

def train(text_file, out, steps, *extra) -> int:
    return main(["train", "--data", text_file, "--out", out, "--max-steps", str(steps), "--eval-every", "2",
                 *OPTS[:-3], "--quiet", *extra])


@pytest.fixture(scope="module")
def straight(text_file, tmp_path_factory) -> str:
    """An uninterrupted run of 8 steps with train()'s options: what every interrupted one must end as."""
    out = str(tmp_path_factory.mktemp("straight") / "run")
    assert train(text_file, out, 8) == 0
    return out


def test_a_full_disk_during_a_checkpoint_save_keeps_the_previous_one_and_resume_is_exact(text_file, tmp_path,
                                                                                        monkeypatch, capsys, straight):
    real, saves = checkpoint.backend.save_npz, []

    def full_disk(fh, arrays):  # the second checkpoint runs out of space halfway
        saves.append(1)
        if len(saves) == 2:
            fh.write(b"PK\x03\x04 half a checkpoint")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fh, arrays)

    monkeypatch.setattr(checkpoint.backend, "save_npz", full_disk)
    out = str(tmp_path / "run")
    assert train(text_file, out, 8) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "latest.npz" in err and "No space left on device" in err and "previous file is intact" in err, err
    assert checkpoint.load(os.path.join(out, "latest.npz"))["step"] == 2
    assert not [n for n in os.listdir(out) if checkpoint.is_temporary(n)]
    assert [r["step"] for r in strict_rows(out)] == [1, 2, 3, 4]
    monkeypatch.undo()  # space again
    assert main(["train", "--resume", out]) == 0
    assert_same_run(out, straight)


def test_a_full_disk_while_appending_metrics_loses_nothing_but_the_last_steps(text_file, tmp_path, monkeypatch,
                                                                            capsys, straight):
    real_open, appends = builtins.open, []

    class HalfWrite:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, text):  # half the line reaches the disk, then it is full
            self.fh.write(text[: len(text) // 2])
            self.fh.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def full_at_step_5(path, mode="r", *args, **kw):
        fh = real_open(path, mode, *args, **kw)
        if str(path).endswith("metrics.jsonl") and "a" in mode:
            appends.append(1)
            if len(appends) == 5:
                return HalfWrite(fh)
        return fh

    monkeypatch.setattr(runfolder, "open", full_at_step_5, raising=False)
    out = str(tmp_path / "run")
    assert train(text_file, out, 8) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "metrics.jsonl" in err and "No space left on device" in err, err
    monkeypatch.undo()
    assert main(["train", "--resume", out]) == 0  # the half line is dropped with the steps after step 4
    assert_same_run(out, straight)


def test_a_resumed_run_equals_an_uninterrupted_one_in_every_file(text_file, tmp_path, straight):
    split = str(tmp_path / "split")
    assert train(text_file, split, 4) == 0
    assert main(["train", "--resume", split, "--max-steps", "8"]) == 0
    assert_same_run(split, straight)  # metrics, samples (the sample generator's state), both checkpoints


@pytest.mark.parametrize("where", ["checkpoint.save", "checkpoint.copy_atomic", "plot.save_loss_plot"])
def test_a_stop_at_any_point_of_the_checkpoint_sequence_resumes_exactly(text_file, tmp_path, monkeypatch, where,
                                                                        straight):
    """Stopped (as a kill would) just before the second latest.npz, between it and best.npz, or after both:
    resuming gives the uninterrupted run, and no metrics line or sample is lost or repeated."""
    from tinygrad_rnn.charlm import plot

    module, name = {"checkpoint": checkpoint, "plot": plot}[where.split(".")[0]], where.split(".")[1]
    real, calls = getattr(module, name), []

    def stop_second_time(*args, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(module, name, stop_second_time)
    out = str(tmp_path / "run")
    assert train(text_file, out, 8) == 130
    monkeypatch.undo()
    assert main(["train", "--resume", out]) == 0
    assert_same_run(out, straight)


def _read_only(folder: str, monkeypatch) -> str:
    """Make ``folder`` refuse new files: chmod where that works; as root (which chmod does not stop)
    open() in the writing modules raises PermissionError for a new file there, as the kernel would."""
    os.chmod(folder, 0o555)
    probe = os.path.join(folder, ".probe")
    try:
        with open(probe, "w"):
            pass
        os.remove(probe)
    except PermissionError:
        return "chmod"
    os.chmod(folder, 0o755)
    real_open = builtins.open

    def guarded(path, mode="r", *args, **kw):
        creating = any(m in mode for m in "wax") and not os.path.exists(path)
        if creating and os.path.dirname(os.path.abspath(path)) == os.path.abspath(folder):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
        return real_open(path, mode, *args, **kw)

    for module in (checkpoint, runfolder):
        monkeypatch.setattr(module, "open", guarded, raising=False)
    return "patched open (running as root)"


def test_a_folder_made_read_only_during_the_run_keeps_the_previous_checkpoint(text_file, tmp_path, monkeypatch,
                                                                            capsys):
    out = str(tmp_path / "run")
    real_save, saves, how = checkpoint.save, [], []

    def save(path, state):
        saves.append(1)
        if len(saves) == 2:
            how.append(_read_only(out, monkeypatch))
        real_save(path, state)

    monkeypatch.setattr(checkpoint, "save", save)
    try:
        assert train(text_file, out, 8) == 2
    finally:
        os.chmod(out, 0o755)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "latest.npz" in err and "Permission denied" in err and "previous file is intact" in err, (how, err)
    assert checkpoint.load(os.path.join(out, "latest.npz"))["step"] == 2
    assert not [n for n in os.listdir(out) if checkpoint.is_temporary(n)]


def test_resume_removes_the_temporary_files_a_kill_left(text_file, tmp_path):
    out = str(tmp_path / "run")
    assert train(text_file, out, 2) == 0
    for name in ("latest.npz.tmp12345", "loss.png.tmp999"):
        shutil.copy(os.path.join(out, "config.json"), os.path.join(out, name))
    (tmp_path / "run" / "notes.tmp1").write_text("mine", encoding="utf-8")  # not ours: kept
    assert main(["train", "--resume", out, "--max-steps", "3"]) == 0
    assert sorted(n for n in os.listdir(out) if ".tmp" in n) == ["notes.tmp1"]
