"""BLAS threads: the count can be set and read, the auto policy gives up cores that other
processes take and takes them back, and nothing process-wide changes at import."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import run_python
from threadpoolctl import threadpool_info, threadpool_limits

from tinygrad_rnn import threads
from tinygrad_rnn.threads import AutoThreads

HAS_POOL = any(lib["user_api"] == "blas" and lib["num_threads"] > 1 for lib in threadpool_info()) \
    or threads.cpu_count() == 1
needs_pool = pytest.mark.skipif(threads.cpu_count() < 2 or not HAS_POOL,
                                reason="needs 2+ cores and a threaded BLAS")


@needs_pool
def test_set_and_get_num_threads_round_trip():
    before = threads.get_num_threads()
    try:
        threads.set_num_threads(1)
        assert threads.get_num_threads() == 1
        with threads.num_threads(2):
            assert threads.get_num_threads() == 2
        assert threads.get_num_threads() == 1  # the block restores what was there
    finally:
        threads.set_num_threads(before)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True, None])
def test_set_num_threads_rejects_what_is_not_a_positive_int(bad):
    with pytest.raises(ValueError, match="positive int"):
        threads.set_num_threads(bad)


@pytest.mark.parametrize("others, current, cores, want", [
    (0.0, 2, 2, 2),    # quiet machine: every core
    (0.4, 2, 2, 2),    # a light background job is not worth halving the products for
    (0.7, 2, 2, 1),    # one busy process: give its core up
    (1.0, 1, 2, 1),    # still there: stay
    (0.3, 1, 2, 1),    # hysteresis: not back at once
    (0.2, 1, 2, 2),    # it left: take the core back
    (2.0, 2, 2, 1),    # two busy processes: never below one thread
    (1.2, 8, 8, 7),
    (3.6, 8, 8, 4),
    (0.0, 4, 8, 8),
])
def test_auto_policy_decides_from_the_cores_others_use(others, current, cores, want):
    assert AutoThreads.decide(others, current, cores) == want


class FakeMachine:
    """A clock and CPU-time counters that a test moves by hand."""

    def __init__(self):
        self.t, self.machine, self.own, self.applied = 0.0, 0.0, 0.0, []

    def run(self, seconds: float, own_cores: float, other_cores: float) -> None:
        self.t += seconds
        self.own += seconds * own_cores
        self.machine += seconds * (own_cores + other_cores)

    def policy(self, **kw) -> AutoThreads:
        return AutoThreads(cores=2, interval=1.0, apply=self.applied.append, clock=lambda: self.t,
                           machine=lambda: self.machine, own=lambda: self.own, **kw)


def test_auto_policy_gives_up_a_core_to_a_busy_process_and_takes_it_back():
    m = FakeMachine()
    p = m.policy()
    assert m.applied == [2]
    m.run(0.5, own_cores=1.9, other_cores=0.0)
    assert p.update() == 2 and m.applied == [2]  # under the interval: nothing read, nothing decided
    m.run(0.75, own_cores=1.9, other_cores=0.0)  # binary-exact times: no rounding at the interval
    assert p.update() == 2
    m.run(1.0, own_cores=1.25, other_cores=0.75)  # another process starts
    assert p.update() == 1 and p.others == 0.75
    m.run(1.0, own_cores=1.0, other_cores=1.0)
    assert p.update() == 1
    m.run(1.0, own_cores=1.0, other_cores=0.0)  # it stopped
    assert p.update() == 2
    assert m.applied == [2, 1, 2]  # set once per change, not at every update


def test_auto_policy_leaves_the_count_alone_where_the_machine_cannot_be_read():
    applied = []
    p = AutoThreads(cores=2, apply=applied.append, clock=time.monotonic, machine=lambda: None, own=lambda: 0.0)
    assert not p.available and p.update() == 2 and applied == []


@pytest.mark.skipif(threads.cpu_count() < 2 or not sys.platform.startswith("linux"), reason="needs /proc and 2 cores")
def test_auto_policy_sees_a_real_busy_process():
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        applied = []
        p = AutoThreads(interval=1.0, apply=applied.append)
        time.sleep(1.2)  # this process idles; the other one spins
        p.update()
    finally:
        busy.kill()
        busy.wait()
    assert p.others >= 0.7, p.others
    assert p.threads == p.cores - 1 and applied[-1] == p.cores - 1


def test_importing_the_library_changes_no_thread_count_and_no_allocator_setting():
    # mallopt is reached through ctypes.CDLL("libc.so.6"): record every library loaded during the import.
    r = run_python("""
        import ctypes, json
        from threadpoolctl import threadpool_info
        loaded = []
        real = ctypes.CDLL
        class Spy(real):
            def __init__(self, name, *a, **k):
                loaded.append(str(name))
                super().__init__(name, *a, **k)
        ctypes.CDLL = Spy
        before = [lib["num_threads"] for lib in threadpool_info()]
        import numpy
        before = [lib["num_threads"] for lib in threadpool_info()]
        import tinygrad_rnn
        after = [lib["num_threads"] for lib in threadpool_info()]
        print(json.dumps({"before": before, "after": after, "libc": [n for n in loaded if "libc" in n]}))
    """)
    assert r.returncode == 0, r.stderr
    import json
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["before"] == out["after"]
    assert out["libc"] == []  # tune_allocator (mallopt) is not called at import


@pytest.mark.skipif(not HAS_POOL or threads.cpu_count() < 2, reason="needs a threaded BLAS")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matrix_products_do_not_depend_on_the_thread_count(dtype):
    """What keeps ``--threads auto`` reproducible: the step's product shapes give the same bits on
    1 and 2 threads (OpenBLAS splits rows and columns among threads, not the summed axis)."""
    rng = np.random.default_rng(0)
    # (B, H) @ (H, 4H), (B, 4H) @ (4H, H), (H, T*B) @ (T*B, 4H), (T*B, V) @ (V, 4H) at S and M sizes
    for m, k, n in [(32, 128, 512), (64, 1024, 256), (128, 2048, 512), (6400, 65, 1024), (256, 6400, 1024)]:
        a, b = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
        with threadpool_limits(1, "blas"):
            one = a @ b
        with threadpool_limits(2, "blas"):
            two = a @ b
        assert np.array_equal(one, two), (m, k, n)


def test_auto_policy_probe_decides_before_any_work():
    m = FakeMachine()

    def sleep(seconds):  # the probe's pause: another process keeps one core busy meanwhile
        m.run(seconds, own_cores=0.0, other_cores=1.0)

    p = AutoThreads(cores=2, probe=0.25, apply=m.applied.append, clock=lambda: m.t, machine=lambda: m.machine,
                    own=lambda: m.own, sleep=sleep)
    assert p.threads == 1 and m.applied == [1] and p.others == 1.0


def test_bench_threads_option_sets_the_count_and_rejects_bad_values():
    from helpers import run_script

    ok = run_script(["-m", "tinygrad_rnn", "bench", "--hidden", "4", "--batch", "2", "--seq-len", "3", "--steps", "1",
                     "--warmup", "0", "--threads", "1"])
    assert ok.returncode == 0, ok.stderr
    assert "BLAS threads 1\n" in ok.stdout
    bad = run_script(["-m", "tinygrad_rnn", "bench", "--threads", "0"])
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "--threads" in bad.stderr and "auto, blas or a positive number" in bad.stderr


@pytest.mark.parametrize("bad", [0, "0", "two", 1.5, True, "", None])
def test_the_trainer_refuses_a_bad_threads_option(bad):
    from tinygrad_rnn.charlm.trainer import TrainConfig

    with pytest.raises(ValueError, match="--threads"):
        TrainConfig(threads=bad).validate()


@needs_pool
def test_training_runs_on_the_threads_it_was_given_and_auto_is_asked_between_steps(tmp_path, monkeypatch):
    from tinygrad_rnn.charlm import trainer

    text = tmp_path / "t.txt"
    text.write_text("abcdefgh" * 400)
    seen, updates = [], []
    real_step = trainer.train_step

    def step(run):
        seen.append(threads.get_num_threads())
        return real_step(run)

    class Policy:
        def update(self):
            updates.append(threads.get_num_threads())
    monkeypatch.setattr(trainer, "train_step", step)
    before = threads.get_num_threads()
    try:
        cfg = dict(data=str(text), hidden_size=4, num_layers=1, seq_len=8, batch_size=2, max_steps=3, quiet=True)
        trainer.train(trainer.TrainConfig(**cfg, out=str(tmp_path / "a"), threads=1), log=lambda m: None)
        assert seen == [1, 1, 1]
        monkeypatch.setattr(trainer, "apply_threads", lambda choice: Policy())
        trainer.train(trainer.TrainConfig(**cfg, out=str(tmp_path / "b")), log=lambda m: None)  # auto by default
        assert len(updates) == 3
    finally:
        threads.set_num_threads(before)
