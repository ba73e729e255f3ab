"""Child processes of tests/test_signals.py (run as ``python signal_workers.py CMD OUT``).

``random``: trains a tiny UNet on the oneDNN conv backend while SIGTERM, SIGINT and SIGHUP
arrive at random moments (from a timer thread) or deterministically inside the PyLayer
backward of a oneDNN convolution. After every stop it resumes from the newest
checkpoint, as ``--mode resume`` does, until training is complete. Then it trains the
same model without interruption (a checkpoint every iteration, for the test to compare
bit for bit) and presses "Ctrl-C" twice inside one backward pass of the iteration after
the last one compared: the process must exit at once with status 130.
Results go to stdout as JSON lines.
"""
import json
import os
import random
import signal
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]

import paddle  # noqa: E402

from dist_workers import FixedImages, tiny_config  # noqa: E402
from ppddpm.data import build_loader  # noqa: E402
from ppddpm.diffusion import GaussianDiffusion  # noqa: E402
from ppddpm.models import build_model  # noqa: E402
from ppddpm.models.conv import _OneDNNConv2d, set_conv_backend  # noqa: E402
from ppddpm.io.weights import load_checkpoint  # noqa: E402
from ppddpm.train.checkpoint import latest_checkpoint, list_checkpoints  # noqa: E402
from ppddpm.train.signals import Interrupted  # noqa: E402
from ppddpm.train.trainer import Trainer  # noqa: E402

ITERS = 10
CONV_BACKWARD = _OneDNNConv2d.backward
# fire(trainer, call) -> bool: whether the backward call number ``call`` (1-based, counted
# per round) sends ``sig`` to this process.
state = {"trainer": None, "calls": 0, "fire": None, "sig": None, "inside": 0}


def report(**kw):
    print(json.dumps(kw), flush=True)


def backward_hook(ctx, dy):
    """The oneDNN conv backward, sending a signal to this process when asked to."""
    state["calls"] += 1
    trainer = state["trainer"]
    if state["fire"] is not None and state["fire"](trainer, state["calls"]):
        os.kill(os.getpid(), state["sig"])
        # Python runs the handler at its next check, which is still inside this backward.
        if trainer.stop is not None and trainer.stop.signum is not None:
            state["inside"] += 1
    return CONV_BACKWARD(ctx, dy)


def make_trainer(out, iters, ckpt_interval=0):
    cfg = tiny_config(out, batchsize=2, iters=iters)
    cfg.model.dropout = 0.1                 # dropout masks too must repeat on resume
    cfg.train.ckpt_interval = ckpt_interval
    paddle.seed(0)
    trainer = Trainer(cfg, build_model(cfg.model), GaussianDiffusion.from_config(cfg.diffusion),
                      FixedImages(), progress=False)
    path = latest_checkpoint(cfg.train.ckpt_dir, cfg.train.ckpt_prefix)
    if path:
        trainer.load_state(load_checkpoint(path), path)
    loader = build_loader(trainer.dataset, trainer.micro_batch, seed=cfg.train.seed,
                          infinite=True, start_step=trainer.iteration)
    state["trainer"], state["calls"], state["fire"], state["inside"] = trainer, 0, None, 0
    return trainer, loader


def run_random(out):
    set_conv_backend("onednn")
    _OneDNNConv2d.backward = staticmethod(backward_hook)
    # Late timer signals (after fit restored the handlers) must not kill this process.
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, lambda *a: None)
    rng = random.Random(int(os.environ.get("SIGNAL_TEST_SEED", "0")))

    chain = os.path.join(out, "chain")
    report(kind="setup", iters=ITERS)
    # A backward round stops after exactly one iteration; a timer fires within half the time
    # the first round took (start-up and one iteration), so it stops after one or two.
    # Before the last timer round about 3 + 2 * 2 = 7 of the 10 iterations are done.
    plans = [("backward", signal.SIGHUP), ("timer", signal.SIGINT), ("backward", signal.SIGTERM),
             ("timer", signal.SIGTERM), ("backward", signal.SIGINT), ("timer", signal.SIGINT)]
    first_round = None
    for how, sig in plans + [("none", None)] * (ITERS + 1):
        trainer, loader = make_trainer(chain, ITERS)
        if trainer.iteration >= ITERS:
            break
        state["sig"], timer = sig, None
        if how == "backward":   # one of the first iteration's conv backward passes (25)
            call = rng.randint(1, 20)
            state["fire"] = lambda t, c, call=call: c == call
        elif how == "timer":    # any moment of the first iterations, start-up included
            timer = threading.Timer(rng.uniform(0.0, first_round / 2), os.kill, (os.getpid(), sig))
            timer.start()
        before, started = trainer.iteration, time.perf_counter()
        try:
            trainer.fit(loader)
            outcome = {"stopped": False}
        except Interrupted as exc:
            outcome = {"stopped": True, "message": str(exc), "exit_code": exc.exit_code}
        if timer is not None:
            timer.cancel()
            timer.join()
        first_round = first_round or time.perf_counter() - started
        found = list_checkpoints(os.path.join(chain, "ckpts"), "cifar10")
        newest = found[-1] if found else (0, None)
        ckpt = load_checkpoint(newest[1]) if newest[1] else None
        report(kind="round", how=how, sig=sig, before=before, after=trainer.iteration,
               newest=newest[0], newest_path=newest[1], inside=state["inside"],
               ckpt_idx=None if ckpt is None else int(ckpt["ckpt_idx"]), **outcome)

    # The uninterrupted run (a checkpoint every iteration), which then gets "Ctrl-C" twice
    # inside one backward pass of the iteration after ITERS: it must exit at once (130).
    trainer, loader = make_trainer(os.path.join(out, "straight"), 100, ckpt_interval=1)
    state["sig"] = signal.SIGINT
    state["fire"] = double_ctrl_c
    report(kind="double_start")
    trainer.fit(loader)
    report(kind="double_not_exited")   # must not be reached


def double_ctrl_c(trainer, call):
    """True at the 3rd and 4th conv backward calls of iteration ITERS (0-based)."""
    if trainer.iteration != ITERS:
        return False
    first = state.setdefault("first_call", call)
    return call - first in (2, 3)


if __name__ == "__main__":
    {"random": run_random}[sys.argv[1]](sys.argv[2])
