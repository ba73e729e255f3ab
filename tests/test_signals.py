"""SIGTERM, SIGINT and SIGHUP end training with a checkpoint of the last finished iteration
and exit status 128 + signal: at random moments, inside the oneDNN conv backward, from the
command line, under two gloo ranks; a second Ctrl-C exits at once."""
import glob
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from helpers_cli import ROOT, tiny_cifar10_yaml
from helpers_data import make_fake_cifar10

from ppddpm.io.weights import load_checkpoint
from ppddpm.train.checkpoint import list_checkpoints

TINY = tiny_cifar10_yaml("{batchsize: 2, training_iters: 100000, warmup_steps: 2, "
                         "sample_interval: 0, ckpt_interval: 0}", sample=None)
HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("signals")
    make_fake_cifar10(str(d / "ds"), 4)
    (d / "tiny.yaml").write_text(TINY)
    return d


def start(workdir, *args, env=None):
    """run_cifar10.py in the background in a process group of its own, its pipes captured."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT, **(env or {}))
    cmd = [sys.executable, os.path.join(ROOT, "run_cifar10.py"), "--config", "tiny.yaml",
           "--data_dir", "ds", "--quiet", *args]
    return subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for(condition, procs, what, timeout=300):
    end = time.time() + timeout
    while not condition():
        dead = [p for p in procs if p.poll() is not None]
        assert not dead, f"exited before {what}: " + dead[0].stderr.read()
        assert time.time() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


def lines(text):
    """stderr without Paddle's start-up chatter (warnings, FLAGS banner, glog lines)."""
    return [l for l in text.splitlines() if l.strip() and not l.startswith(("W1", "I1", "=", "FLAGS"))
            and "Warning" not in l and "warnings.warn" not in l]


def assert_identical(path_a, path_b):
    a, b = load_checkpoint(str(path_a)), load_checkpoint(str(path_b))
    for part in ("model", "model_ema"):
        assert sorted(a[part]) == sorted(b[part])
        for k in a[part]:
            np.testing.assert_array_equal(a[part][k].numpy(), b[part][k].numpy(), err_msg=k)


def test_random_moments_and_backward_passes_always_leave_an_exact_checkpoint(tmp_path):
    """signal_workers.py random: six stops (SIGHUP, SIGINT, SIGTERM; three of them sent from
    inside a oneDNN conv backward), each resumed; the result equals an uninterrupted run
    bit for bit. Then Ctrl-C twice inside one backward pass exits at once with 130."""
    env = dict(os.environ, OMP_NUM_THREADS="1", SIGNAL_TEST_SEED=str(random.randrange(10**6)))
    proc = subprocess.run([sys.executable, os.path.join(HERE, "signal_workers.py"), "random",
                           str(tmp_path)], env=env, capture_output=True, text=True, timeout=600)
    records = [json.loads(l) for l in proc.stdout.splitlines() if l.startswith("{")]
    context = f"seed {env['SIGNAL_TEST_SEED']}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    assert proc.returncode == 130, context
    rounds = [r for r in records if r["kind"] == "round"]
    stopped = [r for r in rounds if r["sig"] is not None]
    assert len(stopped) == 6, context
    for r in stopped:
        assert r["stopped"] and r["exit_code"] == 128 + r["sig"], r
        # The newest checkpoint is the last finished iteration, it loads, and it is named.
        assert r["newest"] == r["after"] and r["ckpt_idx"] == r["after"] - 1, r
        assert r["newest_path"] in r["message"] and "--mode resume" in r["message"], r
        if r["how"] == "backward":  # the handler ran inside the conv backward, and the
            assert r["inside"] == 1 and r["after"] == r["before"] + 1, r  # iteration finished
    assert {r["sig"] for r in stopped} == {signal.SIGHUP, signal.SIGINT, signal.SIGTERM}
    n = records[0]["iters"]
    assert rounds[-1]["after"] == n and not rounds[-1]["stopped"]
    chain = tmp_path / "chain" / "ckpts"
    straight = tmp_path / "straight" / "ckpts"
    name = f"cifar10_ckpt_iter_{n}.pdparam"
    assert_identical(chain / name, straight / name)
    # The second Ctrl-C ended iteration n + 1 at once: no checkpoint of it, every file complete.
    assert records[-1]["kind"] == "double_start", context
    assert "SIGINT again: exiting at once" in proc.stderr
    assert [i for i, _ in list_checkpoints(str(straight), "cifar10")] == list(range(1, n + 1))
    for _, path in list_checkpoints(str(straight), "cifar10"):
        load_checkpoint(path)
    assert not glob.glob(str(straight / ".*.tmp"))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_the_command_line_saves_names_the_checkpoint_and_exits_128_plus_signal(workdir, sig, capsys):
    """The CLI entry in this process; the signal comes at a random moment after the first
    checkpoint (a checkpoint every iteration, only the newest kept)."""
    from ppddpm.cli import main
    folder, running = workdir / f"ck_{sig.name}", [True]

    def send_when_training():
        while running[0] and not list_checkpoints(str(folder), "cifar10"):
            time.sleep(0.02)
        time.sleep(random.uniform(0.0, 0.5))
        if running[0]:
            os.kill(os.getpid(), sig)
    watcher = threading.Thread(target=send_when_training, daemon=True)
    watcher.start()
    try:
        code = main(os.path.join(ROOT, "configs", "cifar10.yaml"), "test", argv=[
            "--config", str(workdir / "tiny.yaml"), "--data_dir", str(workdir / "ds"),
            "--ckpt_dir", str(folder), "--log_dir", str(workdir / f"log_{sig.name}"),
            "--ckpt_interval", "1", "--keep_last", "1", "--quiet"])
    finally:
        running[0] = False
        watcher.join()
    err = capsys.readouterr().err
    assert code == 128 + sig, err
    [(n, path)] = list_checkpoints(str(folder), "cifar10")
    assert lines(err)[-1] == (f"interrupted at iteration {n} by {sig.name}: saved {path}; "
                              "continue with --mode resume"), err
    assert load_checkpoint(path)["ckpt_idx"] == n - 1
    assert sorted(os.listdir(folder)) == [os.path.basename(path)]  # no lock, no temp left


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_two_ranks_stop_after_the_same_iteration_and_rank0_saves(workdir):
    """Two gloo ranks (the environment paddle.distributed.launch sets), each with a data
    loader worker. SIGTERM reaches rank 1's process group (the rank and its worker, as Slurm
    sends it) first and rank 0's a random moment later: both ranks finish the same
    iteration, rank 0 writes its checkpoint, both exit 143."""
    ports = _free_ports(2)
    endpoints = ",".join(f"127.0.0.1:{p}" for p in ports)
    ranks = [start(workdir, "--ckpt_dir", "ck_dist", "--ckpt_interval", "1", "--keep_last", "1",
                   "--num_workers", "1", "-o", "data.in_memory=false",   # a real worker
                   env={"PADDLE_TRAINER_ID": str(r), "PADDLE_TRAINERS_NUM": "2",
                        "PADDLE_CURRENT_ENDPOINT": f"127.0.0.1:{ports[r]}",
                        "PADDLE_TRAINER_ENDPOINTS": endpoints, "PADDLE_DISTRI_BACKEND": "gloo"})
             for r in range(2)]
    try:
        wait_for(lambda: list_checkpoints(str(workdir / "ck_dist"), "cifar10"), ranks,
                 "the first checkpoint")
        os.killpg(ranks[1].pid, signal.SIGTERM)
        time.sleep(random.uniform(0.0, 0.5))
        try:   # rank 0 may have stopped (on rank 1's request) and exited already
            os.killpg(ranks[0].pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        errs = [p.communicate(timeout=300)[1] for p in ranks]
    finally:
        for p in ranks:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    assert [p.returncode for p in ranks] == [143, 143], errs
    found = list_checkpoints(str(workdir / "ck_dist"), "cifar10")
    assert len(found) == 1, found
    n, path = found[0]
    assert lines(errs[0])[-1].startswith(f"interrupted at iteration {n} by SIGTERM: saved "), errs[0]
    assert lines(errs[1])[-1].startswith(f"rank 1: interrupted at iteration {n} by SIGTERM"), errs[1]
    assert load_checkpoint(path)["ckpt_idx"] == n - 1
    assert sorted(os.listdir(workdir / "ck_dist")) == [os.path.basename(path)]  # no lock, no temp
